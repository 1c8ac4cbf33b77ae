"""`pkpo eval`: printed and written numbers against direct formulas, and every error path."""

from __future__ import annotations

import doctest
import gzip
import io
import itertools
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pkpo.evaluate
from pkpo.cli import main as pkpo_main
from pkpo.evaluate import read_samples

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "samples.jsonl"


def pass_at_k_comb(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maxg_at_k_brute(rewards, k: int) -> float:
    subsets = list(itertools.combinations(rewards, k))
    return sum(max(s) for s in subsets) / len(subsets)


def write_lines(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def binary_tasks(seed=0, tasks=10, low=4, high=8):
    """Ragged {task_id: [bool, ...]} with varied success rates."""
    rng = np.random.default_rng(seed)
    return {
        f"T/{t}": (rng.random(int(rng.integers(low, high + 1))) < rng.random()).tolist()
        for t in range(tasks)
    }


def shuffled_records(tasks: dict, field: str, seed=0):
    records = [
        {"task_id": t, field: v, "completion": "..."} for t, values in tasks.items() for v in values
    ]
    order = np.random.default_rng(seed).permutation(len(records))
    return [records[i] for i in order]


def table_rows(stdout: str) -> dict[int, list[str]]:
    """{k: cells} from the printed markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def run_eval(args, capsys):
    code = pkpo_main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# --- numbers -------------------------------------------------------------------------------------


def test_pass_at_k_table_and_json_match_math_comb(tmp_path, capsys):
    tasks = binary_tasks()
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, err = run_eval([path, "--k", "4,1,2", "--json", tmp_path / "out" / "r.json"], capsys)
    assert code == 0 and err == ""
    rows = table_rows(out)
    assert sorted(rows) == [1, 2, 4]
    data = json.loads((tmp_path / "out" / "r.json").read_text())
    assert data["metric"] == "pass@k" and data["input"]["n_tasks"] == 10
    assert data["input"]["n_samples"] == sum(len(v) for v in tasks.values())
    for k, json_row in zip([1, 2, 4], data["rows"]):
        per_task = [pass_at_k_comb(len(v), sum(v), k) for v in tasks.values()]
        mean = statistics.fmean(per_task)
        se = statistics.stdev(per_task) / math.sqrt(len(per_task))
        assert float(rows[k][1]) == pytest.approx(mean, abs=5e-5)
        assert float(rows[k][2]) == pytest.approx(se, abs=5e-5)
        assert rows[k][4] == "10"
        assert json_row["k"] == k
        assert json_row["estimate"] == pytest.approx(mean, abs=1e-12)
        assert json_row["se"] == pytest.approx(se, abs=1e-12)
        low, high = (float(x) for x in rows[k][3].strip("[]").split(","))
        assert low == pytest.approx(json_row["ci_low"], abs=5e-5)
        assert high == pytest.approx(json_row["ci_high"], abs=5e-5)
        assert min(per_task) <= json_row["ci_low"] <= mean <= json_row["ci_high"] <= max(per_task)


def test_reward_file_gives_maxg_at_k(tmp_path, capsys):
    rng = np.random.default_rng(1)
    tasks = {
        t: np.round(rng.normal(size=int(rng.integers(3, 7))), 3).tolist() for t in range(6)
    }  # int ids
    path = write_lines(tmp_path / "r.jsonl", shuffled_records(tasks, "reward"))
    code, out, _ = run_eval([path, "--k", "1,3", "--json", tmp_path / "r.json"], capsys)
    assert code == 0
    assert "maxg@k" in out
    data = json.loads((tmp_path / "r.json").read_text())
    for json_row in data["rows"]:
        k = json_row["k"]
        expected = statistics.fmean(maxg_at_k_brute(v, k) for v in tasks.values())
        assert json_row["estimate"] == pytest.approx(expected, abs=1e-12)
        assert float(table_rows(out)[k][1]) == pytest.approx(expected, abs=5e-5)


def test_options_change_the_interval_as_documented(tmp_path, capsys):
    path = write_lines(
        tmp_path / "s.jsonl", shuffled_records(binary_tasks(seed=2, tasks=30), "passed")
    )
    outs = {}
    for name, extra in {
        "base": [],
        "same": ["--seed", "0", "--bootstrap", "1000"],
        "seed": ["--seed", "9"],
        "conf": ["--confidence", "0.5"],
        "none": ["--bootstrap", "0"],
    }.items():
        code, out, _ = run_eval([path, "--k", "2", *extra], capsys)
        assert code == 0
        outs[name] = table_rows(out)[2]
    assert outs["same"] == outs["base"]
    assert outs["seed"][1:3] == outs["base"][1:3] and outs["seed"][3] != outs["base"][3]
    low50, high50 = (float(x) for x in outs["conf"][3].strip("[]").split(","))
    low95, high95 = (float(x) for x in outs["base"][3].strip("[]").split(","))
    assert low95 < low50 < high50 < high95
    assert outs["none"][3] == "[nan, nan]"


def test_stdin_and_gzip_give_the_same_numbers_as_a_file(tmp_path, capsys, monkeypatch):
    records = shuffled_records(binary_tasks(seed=3), "passed")
    path = write_lines(tmp_path / "s.jsonl", records)
    with gzip.open(tmp_path / "s.jsonl.gz", "wt") as handle:
        handle.write(path.read_text())
    _, from_file, _ = run_eval([path, "--k", "1,4"], capsys)
    _, from_gzip, _ = run_eval([tmp_path / "s.jsonl.gz", "--k", "1,4"], capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(path.read_text()))
    code, from_stdin, _ = run_eval(["-", "--k", "1,4"], capsys)
    assert code == 0
    assert table_rows(from_file) == table_rows(from_gzip) == table_rows(from_stdin)
    assert "<stdin>" in from_stdin


def test_skip_insufficient(tmp_path, capsys):
    tasks = {"a": [True, False, False, True], "b": [False, True], "c": [False] * 4}
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, _ = run_eval([path, "--k", "1,3", "--skip-insufficient"], capsys)
    assert code == 0
    rows = table_rows(out)
    assert rows[1][4:] == ["3", "0"] and rows[3][4:] == ["2", "1"]
    expected = (pass_at_k_comb(4, 2, 3) + 0.0) / 2
    assert float(rows[3][1]) == pytest.approx(expected, abs=5e-5)


def test_plot_writes_a_png(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(seed=4), "passed"))
    code, out, _ = run_eval([path, "--k", "1,2,4", "--plot", tmp_path / "fig" / "p.png"], capsys)
    assert code == 0 and "wrote" in out
    assert (tmp_path / "fig" / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_exits_zero(capsys):
    code, out, _ = run_eval(["--help"], capsys)
    assert code == 0 and "--skip-insufficient" in out


def test_read_samples_groups_by_task_in_first_seen_order():
    lines = [
        '{"task_id": 2, "passed": 1}',
        "",
        '{"task_id": "x", "passed": false}',
        '{"task_id": 2, "passed": 0.0}',
    ]
    samples = read_samples(lines)
    assert samples.task_ids == [2, "x"] and samples.n_lines == 3
    assert [v.tolist() for v in samples.values] == [[True, False], [False]]


def test_subprocess_on_the_example_file(tmp_path):
    example = REPO / "examples" / "samples.jsonl"
    tasks: dict = {}
    for line in example.read_text().splitlines():
        record = json.loads(line)
        tasks.setdefault(record["task_id"], []).append(bool(record["passed"]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pkpo.cli",
            "eval",
            str(example),
            "--k",
            "1,4,16",
            "--json",
            str(tmp_path / "e.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert sorted(rows) == [1, 4, 16]
    for k in (1, 4, 16):
        per_task = [pass_at_k_comb(len(v), sum(v), k) for v in tasks.values()]
        assert float(rows[k][1]) == pytest.approx(statistics.fmean(per_task), abs=5e-5)
        assert float(rows[k][2]) == pytest.approx(
            statistics.stdev(per_task) / math.sqrt(len(tasks)), abs=5e-5
        )
        assert rows[k][4] == str(len(tasks))
    assert json.loads((tmp_path / "e.json").read_text())["input"]["n_tasks"] == len(tasks)


def test_eval_imports_neither_torch_nor_jax_nor_matplotlib_without_plot():
    code = (
        "import sys, pkpo.cli; "
        f"assert pkpo.cli.main(['eval', {str(EXAMPLE)!r}, '--k', '2']) == 0; "
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_doctests():
    result = doctest.testmod(pkpo.evaluate)
    assert result.attempted > 0 and result.failed == 0


def test_subprocess_error_is_one_line_with_exit_code_2(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"task_id": "a", "passed": true}', "{oops"])
    result = subprocess.run(
        [sys.executable, "-m", "pkpo.cli", "eval", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "line 2: invalid JSON" in result.stderr


# --- errors --------------------------------------------------------------------------------------

GOOD = '{"task_id": "a", "passed": true}'


@pytest.mark.parametrize(
    "lines, match",
    [
        ([GOOD, "{oops"], "line 2: invalid JSON"),
        ([GOOD, "", "[1, 2]"], "line 3: expected a JSON object, got list"),
        ([GOOD, '{"passed": true}'], "line 2: missing 'task_id'"),
        (
            [GOOD, '{"task_id": null, "passed": true}'],
            "line 2: task_id must be a string or an integer",
        ),
        (
            [GOOD, '{"task_id": true, "passed": true}'],
            "line 2: task_id must be a string or an integer",
        ),
        ([GOOD, '{"task_id": "a"}'], "line 2: missing 'passed' \\(for pass@k\\) or 'reward'"),
        (
            [GOOD, '{"task_id": "a", "passed": "yes"}'],
            "line 2: 'passed' must be true/false or 0/1; got \"yes\"",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": 2}'],
            "line 2: 'passed' must be true/false or 0/1; got 2",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": null}'],
            "line 2: 'passed' must be true/false or 0/1; got null",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": NaN}'],
            "line 2: 'passed' must be true/false or 0/1; got NaN",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "a", "reward": "0.5"}'],
            "line 2: 'reward' must be a number",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "a", "reward": true}'],
            "line 2: 'reward' must be a number",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "b", "reward": NaN}'],
            "line 2: 'reward' is NaN",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "b", "reward": -Infinity}'],
            "line 2: 'reward' is infinite",
        ),
        (
            [GOOD, "", '{"task_id": "b", "reward": 0.5}'],
            "line 3: has 'reward' but line 1 has 'passed'",
        ),
        (
            [GOOD, '{"task_id": "b", "passed": 1, "reward": 0.5}'],
            "line 2: has both 'passed' and 'reward'",
        ),
        (["", "  "], "contains no samples"),
        (
            [GOOD, GOOD, '{"task_id": "HumanEval/3", "passed": 0}'],
            "task 'HumanEval/3' has 1 samples, fewer than k=2",
        ),
    ],
)
def test_bad_lines_are_one_line_errors_with_exit_code_2(tmp_path, capsys, lines, match):
    path = write_lines(tmp_path / "s.jsonl", lines)
    code, out, err = run_eval([path, "--k", "1,2"], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("pkpo eval: error: ")
    assert "Traceback" not in err
    assert re.search(match, err), err


@pytest.mark.parametrize(
    "args, match",
    [
        (["--k", "0"], "--k needs positive integers"),
        (["--k", "1,x"], "--k needs positive integers"),
        (["--k", ""], "--k needs positive integers"),
        (["--bootstrap", "-5"], "expected a non-negative integer"),
        (["--seed", "1.5"], "expected a non-negative integer"),
        (["--confidence", "95"], "strictly between 0 and 1"),
        (["--k", "8"], "task 'a' has 2 samples, fewer than k=8; use --skip-insufficient"),
        (
            ["--k", "8", "--skip-insufficient"],
            "no task has at least k=8 samples \\(the largest has 2\\)",
        ),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--json", "{dir}"], "could not write output"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_code_2(tmp_path, capsys, args, match):
    path = write_lines(tmp_path / "s.jsonl", [GOOD, GOOD, '{"task_id": "b", "passed": 0}'])
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    code, _, err = run_eval([path, *args], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("pkpo eval: error: ")
    assert re.search(match, err), err


@pytest.mark.parametrize("name", ["missing.jsonl", "bad.jsonl.gz", "latin1.jsonl", "a_dir"])
def test_unreadable_files_are_one_line_errors(tmp_path, capsys, name):
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"task_id": "\xe9", "passed": 1}\n')
    (tmp_path / "a_dir").mkdir()
    code, _, err = run_eval([tmp_path / name], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert {
        "missing.jsonl": "no such file",
        "bad.jsonl.gz": "not a readable gzip",
        "latin1.jsonl": "not UTF-8",
        "a_dir": "not a file",
    }[name] in err
