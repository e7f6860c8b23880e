"""The sentencizer loads without torch, so building reward-model files starts in about a second, not four."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_sentencizer_loads_without_importing_torch_and_torch_stays_importable():
    out = _run(
        "import sys; from annotation.qa.text import load_splitter, sentences; "
        "nlp, name = load_splitter('sentencizer'); "
        "print(name, 'torch' in sys.modules, [s.text for s in sentences(nlp, 'One. Two!')]); "
        "import torch; print(torch.tensor([1]).sum().item())"
    )
    assert out.split("\n") == ["sentencizer False ['One.', 'Two!']", "1"]


def test_a_process_that_imported_torch_first_keeps_it_for_spacy():
    out = _run(
        "import torch; from annotation.qa.text import load_splitter; load_splitter('sentencizer'); "
        "import thinc.compat; print(thinc.compat.has_torch)"
    )
    assert out == "True"


def test_the_build_rm_data_command_never_imports_torch(tmp_path):
    code = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
        "from django.core.management import call_command; "
        "call_command('migrate', verbosity=0); "
        "call_command('import_qa_feedback', 'demo/qa_feedback_demo.json', dataset='demo', split='dev', verbosity=0); "
        f"call_command('build_rm_data', dataset='demo', split='dev', out={str(tmp_path / 'rm')!r}, splitter='sentencizer'); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    env = {**os.environ, "DEBUG": "1", "GRANARY_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "Sentence splitter: sentencizer" in result.stdout
    assert result.stdout.strip().endswith("torch imported: False"), result.stdout
    assert (tmp_path / "rm" / "NF-ERR_subsentence" / "dev.json").is_file()
