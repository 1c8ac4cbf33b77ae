"""Mazes: the task of MaxRL's "infinite data" study (arXiv 2602.02710), at CPU scale.

A maze of side ``size`` (odd, >= 5) is a grid of walls and open squares made by Prim's algorithm on
the ``c x c`` cells at odd coordinates, c = (size - 1) / 2: a *perfect* maze, whose open squares
form a tree (one path between any two of them). Start and goal are two distinct cells. The prompt is
the grid, one character a square, rows separated by a newline token, between grid markers; the
answer is a move sequence ended by *done*::

    <#########|#S....#.#|###.#.#.#|#.....#.#|#.#####.#|#.#...#.#|#.#.#.#.#|#...#..G#|#########>
    ->   RRRDDLLDDDDRRRURDDRR!        (one legal path; the reference is the shortest path)

Tokens: ``#`` wall, ``.`` path, ``S`` start, ``G`` goal, ``|`` newline, ``<`` grid start, ``>`` grid
end / path start; moves ``U D L R`` (one square each) and ``!`` done. (MaxRL uses one token per
symbol in a 32-token vocabulary; the GPT here reads one printable character per token, the same
sequence.)

Binary reward (``maze``): 1 when the moves before the first ``!`` are all legal (each lands on an
open square inside the grid) and end on the goal, else 0. A completion without ``!`` or with any
other character before it scores 0; text after the first ``!`` is ignored (as in MaxRL's
``judge_maze``). Unlike ``judge_maze``, walking through the goal and on does not count: the walk
must stop there.

Continuous reward (``maze-progress``, for maxg@k and TailRL): 1 for a success, else
``PARTIAL * progress``, where progress = max(0, (d(start) - d(p)) / d(start)) is the fraction of the
shortest-path distance d to the goal covered by the last square p reached by legal moves (a walk
stops at its first illegal move; a malformed completion gets 0). Failures thus stay below every
success.

Splits: a maze belongs to ``heldout`` when a hash of its prompt falls in bucket 0 of
:data:`SPLIT_BUCKETS`, to ``validation`` in bucket 1, else to ``train``, so the three sets are
disjoint whatever the seeds. Training mazes are generated lazily, one per index (a fresh maze for
every draw of the trainer when ``n_train >= steps x prompts``); validation and held-out sets are
distinct mazes drawn once. The warm start (:meth:`MazeTask.warmstart_batch`) demonstrates shortest
paths on fresh training mazes.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..interfaces import Problem

WALL, OPEN, START, GOAL, NEWLINE, GRID_START, GRID_END = "#", ".", "S", "G", "|", "<", ">"
MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}
DONE = "!"
SPLITS = ("train", "validation", "heldout")
# 1/16 of all mazes can be held out, 1/16 can be validation, 14/16 are training mazes
SPLIT_BUCKETS = 16
# _distinct gives up after this many draws in a row that bring no new maze (a split too small)
MAX_REPEATS = 2000
PARTIAL = 0.5  # maze-progress: a failure earns this times the fraction of the distance covered


def prim_maze(cells: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze by randomised Prim's algorithm: a bool grid (2c+1, 2c+1), True = wall.

    Cell (i, j) is square (2i+1, 2j+1). From a random cell, repeatedly pick a random frontier edge
    (a visited cell and an unvisited neighbour) and carve it: the wall square between them and the
    new cell. Every cell is joined exactly once, so the open squares form a spanning tree.
    """
    if cells < 1:
        raise ValueError(f"a maze needs at least one cell, got {cells}")
    walls = np.ones((2 * cells + 1, 2 * cells + 1), dtype=bool)
    visited = np.zeros((cells, cells), dtype=bool)

    def visit(i: int, j: int) -> None:
        visited[i, j] = True
        walls[2 * i + 1, 2 * j + 1] = False
        for di, dj in MOVES.values():
            if 0 <= i + di < cells and 0 <= j + dj < cells and not visited[i + di, j + dj]:
                frontier.append((i, j, i + di, j + dj))

    frontier: list[tuple[int, int, int, int]] = []
    visit(*(int(x) for x in rng.integers(0, cells, size=2)))
    while frontier:
        pick = int(rng.integers(len(frontier)))
        frontier[pick], frontier[-1] = frontier[-1], frontier[pick]
        i, j, ni, nj = frontier.pop()
        if visited[ni, nj]:
            continue
        walls[i + ni + 1, j + nj + 1] = False  # the square between (2i+1, 2j+1) and (2ni+1, 2nj+1)
        visit(ni, nj)
    return walls


def distances_to(walls: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Breadth-first distance in moves from every square to ``target`` (-1 on walls)."""
    dist = np.full(walls.shape, -1, dtype=np.int64)
    dist[target] = 0
    queue = deque([target])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            nr, nc = r + dr, c + dc
            if (
                0 <= nr < walls.shape[0]
                and 0 <= nc < walls.shape[1]
                and not walls[nr, nc]
                and dist[nr, nc] < 0
            ):
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


class Maze:
    """One maze: walls, start and goal, with its distance map to the goal and its prompt text."""

    def __init__(self, walls: np.ndarray, start: tuple[int, int], goal: tuple[int, int]):
        walls = np.asarray(walls, dtype=bool)
        for name, square in (("start", start), ("goal", goal)):
            if (
                not (0 <= square[0] < walls.shape[0] and 0 <= square[1] < walls.shape[1])
                or walls[square]
            ):
                raise ValueError(f"{name} {square} is not an open square of the maze")
        if start == goal:
            raise ValueError(f"start and goal are the same square {start}")
        self.walls, self.start, self.goal = walls, tuple(start), tuple(goal)
        self.dist = distances_to(walls, self.goal)
        if self.dist[self.start] < 0:
            raise ValueError("the goal cannot be reached from the start")

    @property
    def size(self) -> int:
        return self.walls.shape[0]

    def prompt(self) -> str:
        """The grid as tokens: ``<`` rows joined by ``|`` ``>``."""
        rows = []
        for r in range(self.walls.shape[0]):
            row = [WALL if self.walls[r, c] else OPEN for c in range(self.walls.shape[1])]
            if r == self.start[0]:
                row[self.start[1]] = START
            if r == self.goal[0]:
                row[self.goal[1]] = GOAL
            rows.append("".join(row))
        return GRID_START + NEWLINE.join(rows) + GRID_END

    def shortest_path(self) -> str:
        """The moves of the unique shortest path from start to goal (descend the distance map)."""
        moves, (r, c) = [], self.start
        while (r, c) != self.goal:
            for name, (dr, dc) in MOVES.items():
                nr, nc = r + dr, c + dc
                if (
                    0 <= nr < self.size
                    and 0 <= nc < self.size
                    and self.dist[nr, nc] == self.dist[r, c] - 1
                ):
                    moves.append(name)
                    r, c = nr, nc
                    break
        return "".join(moves)

    def walk(self, moves: str) -> tuple[tuple[int, int], bool]:
        """Follow ``moves`` from the start: (last square reached by legal moves, all legal?)."""
        r, c = self.start
        for move in moves:
            dr, dc = MOVES[move]
            nr, nc = r + dr, c + dc
            if not (0 <= nr < self.size and 0 <= nc < self.size) or self.walls[nr, nc]:
                return (r, c), False
            r, c = nr, nc
        return (r, c), True


def parse_moves(completion: str) -> str | None:
    """The moves before the first ``!``; None without ``!`` or with another character before it."""
    moves, done, _ = completion.partition(DONE)
    if not done or any(ch not in MOVES for ch in moves):
        return None
    return moves


def maze_success(maze: Maze, completion: str) -> float:
    """Binary reward: 1.0 when the moves before ``!`` are legal and stop on the goal, else 0.0."""
    moves = parse_moves(completion)
    if moves is None:
        return 0.0
    end, legal = maze.walk(moves)
    return float(legal and end == maze.goal)


def maze_progress(maze: Maze, completion: str) -> float:
    """Continuous reward: 1 for a success, else PARTIAL * max(0, (d(start) - d(p)) / d(start)), p
    the last
    square reached by legal moves (0 for a malformed completion)."""
    moves = parse_moves(completion)
    if moves is None:
        return 0.0
    end, legal = maze.walk(moves)
    if legal and end == maze.goal:
        return 1.0
    d0 = int(maze.dist[maze.start])
    return PARTIAL * max(0.0, (d0 - int(maze.dist[end])) / d0)


def split_of(prompt: str) -> str:
    """The split of a maze by a hash (blake2b) of its prompt: bucket 0 heldout, 1 validation."""
    bucket = (
        int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "big")
        % SPLIT_BUCKETS
    )
    return "heldout" if bucket == 0 else "validation" if bucket == 1 else "train"


def random_maze(size: int, rng: np.random.Generator) -> Maze:
    """A Prim's maze of side ``size`` with start and goal two distinct random cells."""
    cells = (size - 1) // 2
    walls = prim_maze(cells, rng)
    a, b = rng.choice(cells * cells, size=2, replace=False)
    start, goal = (
        (2 * int(a // cells) + 1, 2 * int(a % cells) + 1),
        (2 * int(b // cells) + 1, 2 * int(b % cells) + 1),
    )
    return Maze(walls, start, goal)


def maze_in_split(size: int, rng: np.random.Generator, split: str) -> Maze:
    """Draw mazes from ``rng`` until one falls in ``split``."""
    while True:
        maze = random_maze(size, rng)
        if split_of(maze.prompt()) == split:
            return maze


def max_path_moves(size: int) -> int:
    """The longest possible shortest path on a side-``size`` maze: open squares - 1."""
    cells = (size - 1) // 2
    return 2 * cells * cells - 2


@dataclass(frozen=True)
class MazeConfig:
    size: int = 9  # side of the grid (odd): 2 x cells + 1; MaxRL's is 17
    # training mazes (lazy: one per index; a fresh one per draw when n_train >= steps x prompts)
    n_train: int = 100_000
    n_validation: int = 256  # validation mazes (tuning)
    n_heldout: int = 256  # held-out mazes (final numbers)
    seed: int = 0  # maze-generation seed
    binary: bool = True  # False: the continuous progress reward

    def validate(self) -> MazeConfig:
        if self.size < 5 or self.size % 2 == 0:
            raise ValueError(f"maze size must be odd and >= 5, got {self.size}")
        if self.n_train < 1 or self.n_validation < 1 or self.n_heldout < 1:
            raise ValueError(
                f"n_train, n_validation and n_heldout must be >= 1, got {self.n_train}, "
                f"{self.n_validation}, {self.n_heldout}"
            )
        return self


class TrainingMazes(Sequence):
    """``n`` training mazes, each made on demand from (seed, index): item i is always the same."""

    def __init__(self, config: MazeConfig):
        self.config = config

    def __len__(self) -> int:
        return self.config.n_train

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"training maze {index} out of range [0, {len(self)})")
        index %= len(self)
        rng = np.random.default_rng([self.config.seed, 271828, index])
        maze = maze_in_split(self.config.size, rng, "train")
        return Problem(uid=f"train-{index}", prompt=maze.prompt(), answer=maze)


class MazeTask:
    """Reach the goal of a Prim's maze (module docstring); binary or progress reward."""

    def __init__(self, config: MazeConfig | None = None, **kwargs):
        self.config = (config or MazeConfig(**kwargs)).validate()
        self.binary = self.config.binary
        self.name = "maze" if self.binary else "maze-progress"
        self._train = TrainingMazes(self.config)
        self._fixed = {
            split: self._distinct(split, size)
            for split, size in (
                ("validation", self.config.n_validation),
                ("heldout", self.config.n_heldout),
            )
        }

    def _distinct(self, split: str, size: int) -> list[Problem]:
        """``size`` distinct mazes of ``split``; a ValueError when the split has fewer."""
        rng = np.random.default_rng([self.config.seed, 314159, SPLITS.index(split)])
        seen, out, repeats = set(), [], 0
        while len(out) < size:
            maze = maze_in_split(self.config.size, rng, split)
            prompt = maze.prompt()
            if prompt in seen:
                repeats += 1
                if repeats > MAX_REPEATS:
                    raise ValueError(
                        f"only {len(out)} distinct {split} mazes of size {self.config.size} "
                        f"were found, {size} were asked for: use a larger maze_size"
                    )
                continue
            seen.add(prompt)
            repeats = 0
            out.append(Problem(uid=f"{split}-{len(out)}", prompt=prompt, answer=maze))
        return out

    def problems(self, split: str):
        if split == "train":
            return self._train
        if split not in self._fixed:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return list(self._fixed[split])

    def score(self, problem: Problem, completion: str) -> float:
        return (maze_success if self.binary else maze_progress)(problem.answer, completion)

    def classify(self, problem: Problem, completion: str) -> str:
        """What a completion did: ``solved``, ``stopped`` (legal moves, done elsewhere), ``wall``
        (an
        illegal move) or ``malformed`` (no ``!``, or another character before it)."""
        moves = parse_moves(completion)
        if moves is None:
            return "malformed"
        end, legal = problem.answer.walk(moves)
        return "wall" if not legal else "solved" if end == problem.answer.goal else "stopped"

    def max_new_tokens(self) -> int:
        """Room for the longest shortest path, its ``!`` and EOS."""
        return max_path_moves(self.config.size) + 2

    def prompt_length(self) -> int:
        """Characters of every prompt: size rows of size squares, size - 1 newlines, two markers."""
        return self.config.size * (self.config.size + 1) + 1

    # --- supervised warm start -------------------------------------------------------------
    def warmstart_batch(self, rng: np.random.Generator, size: int) -> list[tuple[str, str]]:
        """(prompt, shortest path + ``!``) pairs on fresh training mazes (see pkpo.rl.warmstart)."""
        out = []
        for _ in range(size):
            maze = maze_in_split(self.config.size, rng, "train")
            out.append((maze.prompt(), maze.shortest_path() + DONE))
        return out

    def warmstart_spec(self) -> dict:
        """Everything the warm-start demonstrations depend on (part of the warm-start cache key)."""
        return {
            "task": "maze",
            "size": self.config.size,
            "demonstrator": "shortest path",
            "version": 1,
        }

    def spec(self) -> dict:
        return {"name": self.name, **asdict(self.config)}
