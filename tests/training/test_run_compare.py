"""Comparing runs: overlaid curves (the data endpoint) and final metrics side by side."""

from __future__ import annotations

import pytest
from django.urls import reverse

from training.models import RunMetric, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


def _run(kind: str, name: str, points: dict[str, list[tuple[int, float]]], **summary) -> TrainingRun:
    run = TrainingRun.objects.create(kind=kind, name=name, status=RunStatus.SUCCEEDED, summary=summary)
    RunMetric.objects.bulk_create(RunMetric(run=run, key=key, step=step, value=value)
                                  for key, series in points.items() for step, value in series)
    return run


@pytest.fixture
def two_runs():
    holistic = _run("ppo_holistic", "holistic", {"eval/rouge_lsum": [(0, 0.30), (4, 0.41)], "train/loss": [(1, 2.0), (2, 1.5)]},
                    best_mean_reward=0.2)
    fine = _run("ppo_fine_grained", "fine", {"eval/rouge_lsum": [(0, 0.30), (4, 0.45)], "train/loss": [(1, 2.2), (2, 1.7)],
                                            "reward/relevance": [(1, 0.1)]}, best_mean_reward=0.5)
    return holistic, fine


def test_the_data_endpoint_gives_every_point_of_each_run_for_the_overlay(researcher_client, two_runs):
    holistic, fine = two_runs
    data = researcher_client.get(reverse("training:run_compare_metrics") + f"?runs={holistic.pk},{fine.pk}").json()
    assert [run["id"] for run in data["runs"]] == [holistic.pk, fine.pk]
    assert data["runs"][0]["series"]["eval/rouge_lsum"] == [[0, 0.30], [4, 0.41]]
    assert data["runs"][1]["series"]["reward/relevance"] == [[1, 0.1]]
    assert "reward/relevance" not in data["runs"][0]["series"]
    assert data["runs"][1]["label"] == f"#{fine.pk} fine"


def test_the_page_puts_final_metrics_side_by_side_and_marks_the_best(researcher_client, two_runs):
    holistic, fine = two_runs
    page = researcher_client.get(reverse("training:run_compare") + f"?runs={holistic.pk}&runs={fine.pk}").content.decode()
    assert 'id="compare-charts"' in page and f'data-series-url="/training/runs/compare/metrics.json?runs={holistic.pk},{fine.pk}"' in page
    table = page[page.index('class="table compact compare-table"'):]
    rouge = table[table.index('data-key="eval/rouge_lsum"'):]
    rouge = rouge[: rouge.index("</tr>")]
    assert '<td class="num">0.41</td>' in rouge and '<td class="num best">0.45</td>' in rouge  # higher is better
    loss = table[table.index('data-key="train/loss"'):]
    loss = loss[: loss.index("</tr>")]
    assert '<td class="num best">1.5</td>' in loss  # lower is better
    relevance = table[table.index('data-key="reward/relevance"'):]
    assert '<span class="muted">—</span>' in relevance[: relevance.index("</tr>")]  # the holistic run has none
    summary = table[table.index('data-key="summary/best_mean_reward"'):]
    assert '<td class="num best">0.5</td>' in summary[: summary.index("</tr>")]
    # Evaluation rows first, summaries last.
    assert table.index("eval/rouge_lsum") < table.index("train/loss") < table.index("summary/best_mean_reward")


def test_fewer_than_two_runs_ask_for_more_and_an_unknown_run_is_named(researcher_client, two_runs):
    holistic, _ = two_runs
    page = researcher_client.get(reverse("training:run_compare") + f"?runs={holistic.pk}").content.decode()
    assert "Pick two or more runs to compare (1 picked)" in page
    assert f'value="{holistic.pk}" checked' in page
    missing = researcher_client.get(reverse("training:run_compare") + f"?runs={holistic.pk},999")
    assert missing.status_code == 404 and b"no run #999" in missing.content


def test_the_run_list_and_run_page_link_to_the_comparison(researcher_client, two_runs):
    holistic, _ = two_runs
    assert reverse("training:run_compare").encode() in researcher_client.get(reverse("training:run_list")).content
    page = researcher_client.get(reverse("training:run_detail", args=[holistic.pk])).content.decode()
    assert f'{reverse("training:run_compare")}?runs={holistic.pk}' in page


def test_annotators_cannot_compare_runs(annotator_client, two_runs):
    response = annotator_client.get(reverse("training:run_compare") + f"?runs={two_runs[0].pk},{two_runs[1].pk}")
    assert response.status_code in (302, 403)
