"""Writes test.jsonl (and a 5-question train.jsonl): the adaptive demo's purpose-built questions
(conf/benchmarks/demo_adaptive.yaml), in ARC's schema. Each asks which of four words belongs to a plain category;
the other three come from other categories. The questions are easy on purpose: any format of a model answers them
alike (nearly every paired difference is 0), which is what lets the sequential rule stop early at the demo's margin.
Run: python make_demo_adaptive.py"""

import json
import random
from pathlib import Path

CATEGORIES = {
    "an animal": ["dog", "cat", "horse", "cow", "lion", "tiger", "rabbit", "sheep", "elephant", "monkey"],
    "a color": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "black", "white"],
    "a fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear", "plum", "strawberry"],
    "a number": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
    "a country": ["France", "Germany", "Japan", "Brazil", "Canada", "Italy", "Spain", "India", "China", "Mexico"],
    "a day of the week": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "a musical instrument": ["piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello"],
    "a vehicle": ["car", "bus", "truck", "bicycle", "train", "airplane", "boat", "motorcycle"],
    "a body part": ["hand", "foot", "head", "arm", "leg", "nose", "ear", "eye"],
    "a month": ["January", "February", "March", "April", "May", "June", "July", "August", "September"],
    "a planet": ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"],
    "a piece of furniture": ["chair", "table", "sofa", "bed", "desk", "shelf", "wardrobe", "stool"],
}
SPLITS = {"test": 120, "train": 5}
"""lm-eval's arc_easy reads the train split for few-shot examples even at 0 shots."""


def main() -> None:
    for split, n in SPLITS.items():
        write(split, n, random.Random(f"{split}-20"))


def write(split: str, n: int, rng: random.Random) -> None:
    names = sorted(CATEGORIES)
    lines = []
    for i in range(n):
        cat = names[i % len(names)]
        answer = rng.choice(CATEGORIES[cat])
        others = rng.sample([c for c in names if c != cat], 3)
        choices = [answer] + [rng.choice(CATEGORIES[c]) for c in others]
        rng.shuffle(choices)
        labels = ["A", "B", "C", "D"]
        lines.append(
            json.dumps(
                {
                    "id": f"Evalkit_Adaptive_{split}_{i + 1}",
                    "question": f"Which of these is {cat}?",
                    "choices": {"text": choices, "label": labels},
                    "answerKey": labels[choices.index(answer)],
                }
            )
        )
    Path(__file__).with_name(f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
