"""No claim from degenerate data; the smoke test says so on every page; near-greedy pass@1 in
tables, findings and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from pkpo.rl.sweeps.report import (
    CLAIM_IDS,
    degenerate,
    findings,
    paired_difference,  # noqa: E402
    table_markdown,
    write_sweep_report,
)
from pkpo.rl.sweeps.runs import WARM_LABEL as WARM  # noqa: E402
from pkpo.rl.sweeps.runs import aggregate  # noqa: E402

from test_demo import _fake_sweep  # noqa: E402  (tests/rl is on sys.path)

RUNS = (WARM, "k1", "k4", "k8", "anneal")


def _with_greedy(finals, greedy: dict[str, list[list[int]]], samples=2):
    """Add near-greedy records: greedy[label][seed] = near-greedy successes per problem (out of
    ``samples``)."""
    for f in finals:
        succ = greedy[f["label"]][f["seed"]]
        path = Path(f["run_dir"]) / "eval_detail.json"
        detail = json.loads(path.read_text())
        detail.update(greedy_samples=samples, greedy_successes=succ)
        path.write_text(json.dumps(detail))
        f["greedy_pass@1"] = float(np.mean(succ) / samples)
        f["greedy_pass@1_se"] = float(
            np.std(np.asarray(succ) / samples, ddof=1) / np.sqrt(len(succ))
        )
        f["config"]["greedy_temperature"] = 0.05
    return finals


def test_all_zero_runs_give_no_claim(tmp_path):
    finals = _fake_sweep(tmp_path, {label: [[0, 0, 0]] for label in RUNS})
    assert "scored pass@k = 0 at every k" in degenerate(finals)
    claims = findings(finals)
    assert [c["id"] for c in claims] == list(CLAIM_IDS)
    assert all(c["holds"] is None and "not evaluable" in c["text"] for c in claims)
    assert not any("exploration effect" in c["text"] or "holds" in c["text"] for c in claims)


def test_identical_trained_runs_give_no_claim(tmp_path):
    finals = _fake_sweep(
        tmp_path, {WARM: [[1, 2, 3]], **{label: [[4, 4, 4]] for label in RUNS[1:]}}
    )
    assert degenerate(finals) == "every trained run has the same held-out numbers"
    assert all(c["holds"] is None for c in findings(finals))
    varied = _fake_sweep(tmp_path / "v", {WARM: [[1, 2, 3]], "k1": [[4, 4, 4]], "k8": [[4, 4, 5]]})
    assert degenerate(varied) is None


def test_smoke_report_says_so_everywhere_and_claims_nothing(tmp_path):
    finals = _fake_sweep(tmp_path, {WARM: [[2, 3]], "k1": [[3, 3]], "k8": [[1, 5]]})
    titles = []
    from matplotlib.figure import Figure

    suptitle = Figure.suptitle
    Figure.suptitle = lambda fig, text, **kw: titles.append(text) or suptitle(fig, text, **kw)
    try:
        info = write_sweep_report(
            tmp_path, finals, title="pkpo demo", command="x", wall_s=1.0, smoke=True
        )
    finally:
        Figure.suptitle = suptitle
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# pkpo demo (smoke test, no findings)") and "SMOKE TEST" in report
    assert "What the numbers show" not in report and info["findings"] == []
    assert "SMOKE TEST" in (tmp_path / "table.md").read_text()
    assert json.loads((tmp_path / "table.json").read_text())["smoke_test"] is True
    assert len(titles) == len(info["figures"]) == 4 and all("SMOKE TEST" in t for t in titles)


def test_greedy_column_and_paired_greedy_difference(tmp_path):
    finals = _fake_sweep(
        tmp_path, {WARM: [[2, 3], [2, 3]], "k8": [[4, 4], [4, 5]], "anneal": [[6, 6], [7, 6]]}
    )
    finals = _with_greedy(
        finals, {WARM: [[0, 2], [0, 2]], "k8": [[2, 2], [2, 1]], "anneal": [[2, 2], [2, 2]]}
    )
    rows = sorted(aggregate(finals), key=lambda r: r["label"] != WARM)
    table = table_markdown(rows, 0.05)
    assert "greedy pass@1" in table.splitlines()[2] and "temperature 0.05" in table
    anneal = next(line for line in table.splitlines() if line.startswith("| anneal"))
    assert (
        "**100.0 ± 0.0**" in anneal
    )  # greedy pass@1 of the anneal: 1 on every problem, every seed
    d = paired_difference(finals, "k8", "anneal", 1, greedy=True)
    assert d["per_seed"] == pytest.approx([0.0, -0.25]) and d["diff"] == pytest.approx(-0.125)
    with pytest.raises(ValueError, match="pass@1 only"):
        paired_difference(finals, "k8", "anneal", 4, greedy=True)
    claim = {c["id"]: c for c in findings(finals)}["greedy"]
    assert "Decoded near-greedily" in claim["text"] and "anneal 100.0 %" in claim["text"]
    assert claim["holds"] is False  # the interval over two seeds reaches far below -2 points
