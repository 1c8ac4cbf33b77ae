"""The maze task: Prim's generator, shortest paths, rewards, splits and determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pkpo.rl.interfaces import Task
from pkpo.rl.tasks import make_task as make_maze_task
from pkpo.rl.tasks.maze import (
    DONE,
    MOVES,
    PARTIAL,
    Maze,
    MazeConfig,
    MazeTask,
    distances_to,
    maze_progress,
    maze_success,
    parse_moves,
    prim_maze,
    random_maze,
    split_of,
)


def open_squares(walls):
    return [tuple(map(int, rc)) for rc in np.argwhere(~walls)]


def edges(walls):
    """Adjacent pairs of open squares (each counted once)."""
    opened = set(open_squares(walls))
    return [
        (a, (a[0] + dr, a[1] + dc))
        for a in opened
        for dr, dc in ((1, 0), (0, 1))
        if (a[0] + dr, a[1] + dc) in opened
    ]


@pytest.mark.parametrize("cells,seed", [(1, 0), (2, 1), (4, 2), (6, 3), (8, 4)])
def test_prim_maze_is_a_perfect_maze(cells, seed):
    walls = prim_maze(cells, np.random.default_rng(seed))
    side = 2 * cells + 1
    assert walls.shape == (side, side)
    assert (
        walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    )  # closed border
    assert not walls[1::2, 1::2].any()  # every cell is open
    assert walls[::2, ::2].all()  # lattice corners stay walls
    squares = open_squares(walls)
    # a tree: connected, and exactly one fewer edge than vertices
    assert len(edges(walls)) == len(squares) - 1
    dist = distances_to(walls, squares[0])
    assert (dist[~walls] >= 0).all()
    assert len(squares) == cells * cells + cells * cells - 1  # c^2 cells and c^2 - 1 carved walls


def test_shortest_path_matches_brute_force_bfs_and_is_legal():
    rng = np.random.default_rng(5)
    for _ in range(30):
        maze = random_maze(9, rng)
        path = maze.shortest_path()
        assert len(path) == maze.dist[maze.start] > 0
        end, legal = maze.walk(path)
        assert legal and end == maze.goal
        # brute force: in a tree the shortest path is the only simple path; no legal walk shorter
        # reaches the goal
        for length in range(len(path)):
            for moves in itertools.product("UDLR", repeat=length) if length <= 4 else ():
                end, legal = maze.walk("".join(moves))
                assert not (legal and end == maze.goal)


def test_distances_to_known_corridor():
    walls = np.array(
        [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]],
        dtype=bool,
    )
    maze = Maze(walls, start=(1, 1), goal=(3, 1))
    assert maze.dist[1, 1] == 6 and maze.shortest_path() == "RRDDLL"
    assert maze.prompt() == "<#####|#S..#|###.#|#G..#|#####>"


def test_maze_rejects_bad_start_or_goal():
    walls = prim_maze(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="start"):
        Maze(walls, start=(0, 0), goal=(1, 1))
    with pytest.raises(ValueError, match="same square"):
        Maze(walls, start=(1, 1), goal=(1, 1))


@pytest.fixture(scope="module")
def corridor():
    walls = np.array(
        [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]],
        dtype=bool,
    )
    return Maze(walls, start=(1, 1), goal=(3, 1))


@pytest.mark.parametrize(
    "completion,reward",
    [
        ("RRDDLL!", 1.0),  # the shortest path
        ("RRDDLL!UUU", 1.0),  # text after done is ignored
        ("RRLRDDLL!", 1.0),  # a legal detour still reaches the goal
        ("RRDDL!", 0.0),  # stopped one square early
        ("RRDDLL", 0.0),  # no done
        ("DRRDDLL!", 0.0),  # the first move hits a wall
        ("RRDDLLL!", 0.0),  # walks into the wall behind the goal
        ("RRDDLLR!", 0.0),  # walks through the goal and on: must stop there
        ("RRDDLXL!", 0.0),  # a foreign character before done
        ("!", 0.0),  # done at the start
        ("", 0.0),
    ],
)
def test_binary_reward_edge_cases(corridor, completion, reward):
    assert maze_success(corridor, completion) == reward


def test_progress_reward(corridor):
    d0 = 6
    assert maze_progress(corridor, "RRDDLL!") == 1.0
    assert maze_progress(corridor, "RRDD!") == pytest.approx(PARTIAL * 4 / d0)
    assert maze_progress(corridor, "RRDDUL!") == pytest.approx(
        PARTIAL * 3 / d0
    )  # stops at the illegal L
    assert maze_progress(corridor, "!") == 0.0
    assert maze_progress(corridor, "RRDD") == 0.0  # no done: malformed
    assert (
        maze_progress(corridor, "RRDDL!") < 1.0
    )  # a failure next to the goal stays below a success
    rng = np.random.default_rng(2)
    for _ in range(20):
        maze = random_maze(9, rng)
        assert (
            0.0 <= maze_progress(maze, "".join(rng.choice(list(MOVES), size=6)) + DONE) <= PARTIAL
        )


def test_parse_moves():
    assert parse_moves("UD!LR") == "UD" and parse_moves("!") == ""
    assert parse_moves("UD") is None and parse_moves("U D!") is None


def test_task_contract_scores_and_classify():
    task = make_maze_task("maze", size=7, n_validation=8, n_heldout=8)
    assert isinstance(task, Task) and task.binary and task.name == "maze"
    p = task.problems("heldout")[0]
    best = p.answer.shortest_path() + DONE
    assert task.score(p, best) == 1.0
    assert task.classify(p, best) == "solved" and task.classify(p, "?") == "malformed"
    assert task.classify(p, DONE) == "stopped"
    assert len(p.prompt) == task.prompt_length()
    assert len(best) + 1 <= task.max_new_tokens()
    cont = make_maze_task("maze-progress", size=7, n_validation=8, n_heldout=8)
    assert not cont.binary and cont.score(cont.problems("heldout")[0], DONE) == 0.0
    with pytest.raises(ValueError, match="unknown split"):
        task.problems("test")


@pytest.mark.parametrize("bad", [{"size": 8}, {"size": 3}, {"n_heldout": 0}, {"n_train": 0}])
def test_bad_config_is_a_value_error(bad):
    with pytest.raises(ValueError):
        MazeConfig(**bad).validate()
    with pytest.raises(ValueError, match="unknown task"):
        make_maze_task("labyrinth")


def test_a_split_too_small_for_the_request_is_a_value_error():
    # 5x5 mazes: 4 spanning trees x 12 (start, goal) pairs = 48 mazes, about 3 per split
    with pytest.raises(
        ValueError, match="distinct heldout mazes of size 5 were found, 40 were asked"
    ):
        MazeTask(size=5, n_validation=1, n_heldout=40)


def test_splits_are_disjoint_by_hash_and_distinct():
    task = MazeTask(size=9, n_validation=64, n_heldout=64, n_train=500)
    prompts = {
        split: [p.prompt for p in task.problems(split)]
        for split in ("train", "validation", "heldout")
    }
    for split, ps in prompts.items():
        assert all(split_of(p) == split for p in ps)
    assert len(set(prompts["validation"])) == 64 and len(set(prompts["heldout"])) == 64
    assert len(set(prompts["train"])) == 500  # fresh: no training maze drawn twice here
    assert not set(prompts["train"]) & set(prompts["validation"])
    assert not set(prompts["train"]) & set(prompts["heldout"])
    assert not set(prompts["validation"]) & set(prompts["heldout"])
    # the hash puts about 1/16 of all mazes in each evaluation split
    rng = np.random.default_rng(9)
    share = np.mean([split_of(random_maze(9, rng).prompt()) == "heldout" for _ in range(1600)])
    assert 0.03 < share < 0.1


def test_determinism_by_seed():
    a, b = (
        MazeTask(size=9, n_validation=8, n_heldout=8),
        MazeTask(size=9, n_validation=8, n_heldout=8),
    )
    c = MazeTask(size=9, n_validation=8, n_heldout=8, seed=1)
    for split in ("validation", "heldout"):
        assert [p.prompt for p in a.problems(split)] == [p.prompt for p in b.problems(split)]
        assert [p.prompt for p in a.problems(split)] != [p.prompt for p in c.problems(split)]
    train_a, train_b = a.problems("train"), b.problems("train")
    assert train_a[123].prompt == train_b[123].prompt != c.problems("train")[123].prompt
    assert train_a[-1].prompt == train_a[len(train_a) - 1].prompt
    with pytest.raises(IndexError):
        train_a[len(train_a)]
    batch_a = a.warmstart_batch(np.random.default_rng(4), 5)
    assert batch_a == b.warmstart_batch(np.random.default_rng(4), 5)


def test_warmstart_batch_demonstrates_shortest_paths_on_training_mazes():
    task = MazeTask(size=9, n_validation=8, n_heldout=8)
    for prompt, completion in task.warmstart_batch(np.random.default_rng(0), 20):
        assert split_of(prompt) == "train"
        assert completion.endswith(DONE)
        maze = maze_from_prompt(prompt)
        assert (
            len(completion) - 1 == maze.dist[maze.start] and maze_success(maze, completion) == 1.0
        )


def maze_from_prompt(prompt):
    rows = prompt[1:-1].split("|")
    walls = np.array([[ch == "#" for ch in row] for row in rows])

    def find(ch):
        return next((r, row.index(ch)) for r, row in enumerate(rows) if ch in row)

    return Maze(walls, find("S"), find("G"))


def test_prompt_round_trips():
    rng = np.random.default_rng(3)
    for _ in range(10):
        maze = random_maze(11, rng)
        again = maze_from_prompt(maze.prompt())
        assert (
            np.array_equal(again.walls, maze.walls)
            and again.start == maze.start
            and again.goal == maze.goal
        )
