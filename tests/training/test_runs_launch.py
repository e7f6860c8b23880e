"""The pure parts of the launcher: the child's command line, tailing events and logs."""

import json
import signal
from pathlib import Path

from training.run_folder import tail_lines
from training.supervisor import EventTail, child_argv, describe_exit


def _argv(**extra):
    return child_argv(
        kind="rm_relevance",
        config_path=Path("/m/runs/1/config.json"),
        output_dir=Path("/m/runs/1"),
        events_path=Path("/m/runs/1/events.jsonl"),
        python="/venv/bin/python",
        **extra,
    )


def test_it_runs_plain_python_without_several_gpus():
    assert _argv(gpu_count=1) == [
        "/venv/bin/python", "-m", "training.ml.entry", "rm_relevance",
        "--trainer", "training.ml.train_rm:run_token_rm", "--config-class", "training.ml.configs:TokenRMConfig",
        "--config", "/m/runs/1/config.json", "--output-dir", "/m/runs/1", "--events", "/m/runs/1/events.jsonl",
    ]


def test_it_uses_accelerate_across_several_gpus():
    argv = _argv(gpu_count=4)
    assert argv[:8] == ["/venv/bin/python", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "-m", "training.ml.entry"]
    assert argv[8] == "rm_relevance"


def test_it_passes_an_accelerate_config_file_even_on_one_gpu():
    argv = _argv(gpu_count=1, accelerate_config="/etc/accelerate.yaml")
    assert argv[3:5] == ["--config_file", "/etc/accelerate.yaml"]
    assert "--multi_gpu" not in argv
    assert argv[5:8] == ["-m", "training.ml.entry", "rm_relevance"]


def test_it_adds_resume_and_name_and_honours_a_base_command():
    argv = _argv(resume_from=Path("/m/runs/0/checkpoints/last"), run_name="2-rm_relevance", base_command=["fake", "--mode", "ok"], gpu_count=8)
    assert argv[:4] == ["fake", "--mode", "ok", "rm_relevance"]
    assert argv[-4:] == ["--resume-from", "/m/runs/0/checkpoints/last", "--run-name", "2-rm_relevance"]


def test_it_reads_only_complete_event_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == []  # no file yet
    with open(path, "w") as handle:
        handle.write(json.dumps({"event": "progress", "step": 1}) + "\n" + '{"event": "metr')
    assert tail.read() == [{"event": "progress", "step": 1}]
    with open(path, "a") as handle:
        handle.write('ics", "step": 1, "metrics": {"train/loss": 0.5}}\n')
    assert tail.read() == [{"event": "metrics", "step": 1, "metrics": {"train/loss": 0.5}}]
    assert tail.read() == []


def test_it_turns_garbage_lines_into_log_events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('not json\n[1, 2]\n{"event": "done", "summary": {}}\n')
    events = EventTail(path).read()
    assert [e["event"] for e in events] == ["log", "log", "done"]
    assert "not json" in events[0]["message"]


def test_it_keeps_the_last_lines_of_a_log(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("".join(f"line {i}\n" for i in range(200)) + "progress 10%\rprogress 90%\n")
    tail = tail_lines(path, 3)
    assert tail.splitlines() == ["line 198", "line 199", "progress 90%"]
    assert tail_lines(tmp_path / "missing.txt") == ""


def test_it_describes_how_the_trainer_ended():
    assert describe_exit(-signal.SIGKILL) == "the trainer was killed by SIGKILL"
    assert describe_exit(3) == "the trainer exited with code 3"

