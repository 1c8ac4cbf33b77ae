"""The sweep report on what a sweep folder may hold: few evaluation samples, damaged final.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the plot extra: make test installs it")

from pkpo.rl.cli import sweep_main  # noqa: E402
from pkpo.rl.sweeps.report import write_sweep_report  # noqa: E402
from pkpo.rl.sweeps.runs import WARM_LABEL, finished_runs, per_problem_pass_at_k  # noqa: E402


def fake_sweep(out, successes: dict, samples: int) -> None:
    """Finished runs under out/runs/<label>/seed0 (final.json, eval_detail.json), as the grid
    writes them."""
    for label, succ in successes.items():
        run = out / "runs" / label / "seed0"
        run.mkdir(parents=True)
        (run / "eval_detail.json").write_text(
            json.dumps(
                {"uid": [f"p{i}" for i in range(len(succ))], "samples": samples, "successes": succ}
            )
        )
        config = {"out_dir": str(run), "eval_samples": samples, "task": "hidden-rule", "n": 8}
        final = {
            "name": label,
            "method": "pkpo",
            "k_schedule": label,
            "baseline": "loo_minus_one",
            "seed": 0,
            "config": config,
        }
        for k in (1, 2, 4, 8):
            if k <= samples:
                final[f"pass@{k}"] = float(per_problem_pass_at_k(succ, samples, k).mean())
        (run / "final.json").write_text(json.dumps(final))


def test_a_sweep_evaluated_with_4_samples_gets_its_report(tmp_path):
    successes = {WARM_LABEL: [1, 0, 2], "k1": [2, 1, 2], "k4": [3, 0, 4], "k8": [4, 1, 3]}
    fake_sweep(tmp_path, successes, samples=4)
    info = write_sweep_report(tmp_path, finished_runs(tmp_path), title="t", command="c", wall_s=1.0)
    report = (tmp_path / "report.md").read_text()
    assert "The final evaluation drew 4 samples per problem, so the claims at k_eval = 8" in report
    ids = {c["id"] for c in info["findings"]}
    assert "a" not in ids and "c8" not in ids and {"b", "c1", "c4"} <= ids
    c4 = next(c for c in info["findings"] if c["id"] == "c4")
    expected = 100 * np.mean(per_problem_pass_at_k([3, 0, 4], 4, 4))
    assert f"({expected:.1f} %)" in c4["text"]


@pytest.mark.parametrize(
    "content, why",
    [
        ('{"seed": 0, "pass@1": 0.', "invalid JSON: Expecting"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"seed": 0, "method": "pkpo"}', "'config' is missing or not an object"),
        ('{"seed": "0"}', "'seed' is missing or not an integer"),
        (
            '{"seed": 0, "method": "m", "k_schedule": "k", "baseline": "b", "config": {}}',
            "its config has no group size",
        ),
    ],
)
def test_report_only_with_a_damaged_final_json_is_one_line(tmp_path, capsys, content, why):
    fake_sweep(tmp_path, {WARM_LABEL: [1, 0], "k1": [2, 1]}, samples=4)
    damaged = tmp_path / "runs" / "k1" / "seed0" / "final.json"
    damaged.write_text(content)
    argv = ["--out", str(tmp_path), "--report-only", "--eval-ks", "1,2,4", "--eval-samples", "4"]
    assert sweep_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpo sweep: error: ") and err.count("\n") == 1
    assert f"{str(damaged)!r} is not a finished run's final.json ({why}" in err
    assert not (tmp_path / "report.md").exists()
