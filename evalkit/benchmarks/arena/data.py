"""Arena-Hard-Auto's file formats: `question.jsonl` and `model_answer/<model>.jsonl`, read strictly, written atomically.

question.jsonl: {"question_id", "category", "cluster", "turns": [{"content"}]}
model answers:  {"question_id", "answer_id", "model_id", "choices": [{"index", "turns": [{"content", "token_len"}]}],
                 "tstamp"}
Arena-Hard v0.1 is single-turn with one choice per answer: the first turn of the first choice is the answer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.core.errors import BenchmarkError
from evalkit.util.files import JsonLineError, read_jsonl, write_text_atomic
from evalkit.util.hashing import sha256_text


@dataclass(frozen=True)
class Question:
    """One Arena-Hard prompt."""

    question_id: str
    category: str
    cluster: str
    prompt: str
    """The first (in v0.1 the only) user turn."""

    def messages(self) -> list[dict[str, str]]:
        """What the evaluated model is sent: the user turn alone (arena-hard adds a system prompt only for
        OpenAI's own models)."""
        return [{"role": "user", "content": self.prompt}]

    def prompt_hash(self) -> str:
        return sha256_text(json.dumps(self.messages(), sort_keys=True, ensure_ascii=False))


@dataclass(frozen=True)
class Answer:
    """One model's answer to one question."""

    question_id: str
    model_id: str
    content: str
    token_len: int | None
    """Tokens of `content` as the file gives them (arena-hard: tiktoken; ours: the server's completion_tokens)."""
    answer_id: str = ""
    tstamp: float = 0.0

    def record(self) -> dict[str, Any]:
        """The answer as one line of an arena-hard model_answer file."""
        turn: dict[str, Any] = {"content": self.content}
        if self.token_len is not None:
            turn["token_len"] = self.token_len
        return {
            "question_id": self.question_id,
            "answer_id": self.answer_id or uuid.uuid4().hex,
            "model_id": self.model_id,
            "choices": [{"index": 0, "turns": [turn]}],
            "tstamp": self.tstamp or time.time(),
        }


def _rows(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        for lineno, row in read_jsonl(path):
            if not isinstance(row, dict):
                raise BenchmarkError(f"arena_hard: {what} {path} line {lineno} is not a JSON object")
            yield lineno, row
    except JsonLineError as exc:
        raise BenchmarkError(
            f"arena_hard: {what} {path} line {exc.lineno} is not JSON: {exc.error}",
            hint="restore the file (evalkit prefetch downloads the real set) or delete the broken line",
        ) from exc
    except OSError as exc:
        raise BenchmarkError(
            f"arena_hard: cannot read {what} {path}: {exc}", hint="check the path in the benchmark settings"
        ) from exc


def read_questions(path: Path | str) -> list[Question]:
    """All questions in file order. Duplicate ids and missing fields are errors naming the line."""
    path = Path(path)
    questions: list[Question] = []
    seen: set[str] = set()
    for lineno, row in _rows(path, "question file"):
        try:
            qid = str(row["question_id"])
            content = row["turns"][0]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BenchmarkError(
                f"arena_hard: question file {path} line {lineno} lacks question_id or turns[0].content ({exc!r})"
            ) from exc
        if not isinstance(content, str):
            raise BenchmarkError(f"arena_hard: question {qid} in {path} has a non-text turn (images are not supported)")
        if qid in seen:
            raise BenchmarkError(f"arena_hard: question file {path} repeats question_id {qid} (line {lineno})")
        seen.add(qid)
        questions.append(Question(qid, str(row.get("category", "")), str(row.get("cluster", "")), content))
    if not questions:
        raise BenchmarkError(f"arena_hard: question file {path} has no questions")
    return questions


def read_answers(path: Path | str) -> dict[str, Answer]:
    """question_id -> answer. A repeated question keeps its last line, as arena-hard's `load_model_answers` does."""
    path = Path(path)
    answers: dict[str, Answer] = {}
    for lineno, row in _rows(path, "answer file"):
        try:
            turn = row["choices"][0]["turns"][0]
            qid, content = str(row["question_id"]), turn["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BenchmarkError(
                f"arena_hard: answer file {path} line {lineno} lacks question_id or choices[0].turns[0].content "
                f"({exc!r})"
            ) from exc
        token_len = turn.get("token_len")
        answers[qid] = Answer(
            question_id=qid,
            model_id=str(row.get("model_id", "")),
            content=str(content),
            token_len=int(token_len) if token_len is not None else None,
            answer_id=str(row.get("answer_id", "")),
            tstamp=float(row.get("tstamp", 0.0) or 0.0),
        )
    return answers


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace `path` with `rows` in one rename: readers see the old file or the new one, never a torn one."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_answers(path: Path, answers: Iterable[Answer]) -> None:
    write_jsonl_atomic(path, (a.record() for a in answers))
