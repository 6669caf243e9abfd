"""Write the embedded default's sample datasets (data/samples/) in AISBench's real on-disk formats.

The questions are bench_app's own (not copied from the real benchmarks). The output is committed;
re-running this script reproduces it byte for byte.
    ceval/formal_ceval/{dev,val,test}/<subject>_<split>.csv   header; dev has `explanation`, test no answer
    mmlu/{dev,test}/<subject>_<split>.csv                      no header; question,A,B,C,D,answer
    gsm8k/{train,test}.jsonl                                   {"question","answer"} with "#### N"
    LongBench-v2/data.json                                     contexts beyond the tiny model's 2048 tokens
    aime/aime.jsonl                                            {"id","origin_prompt","gold_answer"} (integer)
    gpqa/gpqa_diamond.csv                                      GPQA's columns; Question = column 7, then the
                                                               correct answer and three incorrect ones
"""

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "data" / "samples"

CEVAL = {
    "computer_network": [
        (
            "Which layer of the OSI model is responsible for routing packets between networks?",
            "Physical",
            "Network",
            "Session",
            "Application",
            "B",
        ),
        ("Which protocol translates domain names into IP addresses?", "DNS", "FTP", "SMTP", "ARP", "A"),
        ("How many bits are in an IPv4 address?", "16", "64", "32", "128", "C"),
    ],
    "high_school_physics": [
        ("What is the SI unit of force?", "Joule", "Watt", "Pascal", "Newton", "D"),
        (
            "An object falls freely near the Earth's surface. Its acceleration is about",
            "9.8 m/s^2",
            "1 m/s^2",
            "98 m/s^2",
            "0 m/s^2",
            "A",
        ),
        ("Which quantity is a vector?", "Mass", "Velocity", "Temperature", "Energy", "B"),
    ],
}
CEVAL_DEV = (
    "Which of these is a prime number?",
    "4",
    "6",
    "7",
    "9",
    "C",
    "7 has no divisors other than 1 and itself.",
)
CEVAL_TEST = ("Which gas do plants absorb for photosynthesis?", "Oxygen", "Carbon dioxide", "Helium", "Neon")

MMLU = {
    "high_school_geography": [
        ("Which is the largest ocean on Earth?", "Atlantic", "Indian", "Pacific", "Arctic", "C"),
        ("The Sahara desert lies mainly on which continent?", "Africa", "Asia", "Australia", "Europe", "A"),
        (
            "Which line divides the Earth into the Northern and Southern Hemispheres?",
            "Prime meridian",
            "Equator",
            "Tropic of Cancer",
            "Date line",
            "B",
        ),
    ],
    "computer_security": [
        (
            "Which practice best protects an account against a stolen password?",
            "Shorter passwords",
            "Two-factor authentication",
            "Writing the password down",
            "Reusing passwords",
            "B",
        ),
        (
            "What does encryption primarily provide?",
            "Confidentiality",
            "Faster networks",
            "More storage",
            "Lower latency",
            "A",
        ),
        (
            "A phishing attack usually tries to",
            "Cool the CPU",
            "Trick a person into revealing secrets",
            "Defragment a disk",
            "Update drivers",
            "B",
        ),
    ],
}
MMLU_DEV = ("What is 10 divided by 2?", "2", "5", "10", "20", "B")

GSM8K_TEST = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have now?", "3 + 4 = 7\n#### 7"),
    ("A box holds 6 eggs. How many eggs are in 5 boxes?", "6 * 5 = 30\n#### 30"),
    (
        "Anna had 20 dollars and spent 8 dollars on a book. How many dollars does she have left?",
        "20 - 8 = 12\n#### 12",
    ),
    ("A train travels 60 kilometers each hour. How far does it travel in 3 hours?", "60 * 3 = 180\n#### 180"),
]
GSM8K_TRAIN = [("Sam has 2 pens and gets 2 more. How many pens does he have?", "2 + 2 = 4\n#### 4")]

TOWNS = [
    "Alder Creek",
    "Brightwater",
    "Cobalt Ridge",
    "Dunmore",
    "Elm Hollow",
    "Fairhaven",
    "Glenrock",
    "Harrow Point",
]
TRADES = [
    "weaving",
    "pottery",
    "glassmaking",
    "clockmaking",
    "boatbuilding",
    "beekeeping",
    "printing",
    "bookbinding",
]


def long_context(needle: str, paragraphs: int = 44) -> str:
    """A long, repetitive chronicle (well over 2048 tokens) with one fact the question asks about."""
    parts = []
    for i in range(paragraphs):
        town, trade = TOWNS[i % len(TOWNS)], TRADES[(i * 3) % len(TRADES)]
        parts.append(
            f"Chapter {i + 1}. In the year {1800 + i * 3}, the town of {town} was known for its {trade}. "
            "Travellers crossed the valley to trade grain, wool and salt at the market by the river, "
            "and the "
            f"town council recorded {40 + i} new families that season. The harvest was described as "
            f"{'plentiful' if i % 2 else 'modest'}, and the roads were repaired before the winter rains."
        )
        if i == paragraphs // 2:
            parts.append(needle)
    return "\n".join(parts)


LONGBENCH = [
    {
        "_id": "bench_app_sample_0",
        "domain": "Single-Document QA",
        "sub_domain": "Chronicle",
        "difficulty": "easy",
        "length": "short",
        "question": "According to the chronicle, what colour was the lighthouse of Harrow Point painted?",
        "choice_A": "Green",
        "choice_B": "Blue",
        "choice_C": "Red",
        "choice_D": "Yellow",
        "answer": "C",
        "needle": "Note: the lighthouse of Harrow Point was painted red so that fishermen could see "
        "it in the fog.",
    },
    {
        "_id": "bench_app_sample_1",
        "domain": "Single-Document QA",
        "sub_domain": "Chronicle",
        "difficulty": "easy",
        "length": "short",
        "question": "According to the chronicle, how many bridges did the town of Glenrock build?",
        "choice_A": "Two",
        "choice_B": "Five",
        "choice_C": "Nine",
        "choice_D": "Twelve",
        "answer": "B",
        "needle": "Note: the town of Glenrock built exactly five bridges over the river, all of stone.",
    },
]


# Competition-math style: the answer is an integer the model puts in \\boxed{} (AISBench's MATHEvaluator).
AIME = [
    ("What is the sum of the first ten positive integers?", "55"),
    ("How many positive divisors does 36 have?", "9"),
    ("What is the remainder when 2 to the power 10 is divided by 7?", "2"),
]

# Science multiple choice in GPQA's layout: question, correct answer, three incorrect answers, explanation.
GPQA = [
    (
        "Which particle carries a negative electric charge?",
        "Electron",
        "Proton",
        "Neutron",
        "Photon",
        "Electrons carry charge -e; protons +e; neutrons and photons none.",
    ),
    (
        "What is the chemical formula of water?",
        "H2O",
        "CO2",
        "NaCl",
        "O3",
        "Two hydrogen atoms bound to one oxygen atom.",
    ),
    (
        "Which organelle produces most of a cell's ATP?",
        "Mitochondrion",
        "Ribosome",
        "Golgi apparatus",
        "Lysosome",
        "Oxidative phosphorylation takes place in the mitochondria.",
    ),
]
GPQA_HEADER = [
    "Pre-Revision Question",
    "Pre-Revision Correct Answer",
    "Pre-Revision Incorrect Answer 1",
    "Pre-Revision Incorrect Answer 2",
    "Pre-Revision Incorrect Answer 3",
    "Pre-Revision Explanation",
    "Self-reported question-writing time (minutes)",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Explanation",
]


def write_csv(path: Path, rows, header=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    base = ROOT / "ceval" / "formal_ceval"
    for subject, questions in CEVAL.items():
        write_csv(
            base / "val" / f"{subject}_val.csv",
            [(i, *q) for i, q in enumerate(questions)],
            ["id", "question", "A", "B", "C", "D", "answer"],
        )
        write_csv(
            base / "dev" / f"{subject}_dev.csv",
            [(0, *CEVAL_DEV)],
            ["id", "question", "A", "B", "C", "D", "answer", "explanation"],
        )
        write_csv(
            base / "test" / f"{subject}_test.csv", [(0, *CEVAL_TEST)], ["id", "question", "A", "B", "C", "D"]
        )
    for subject, questions in MMLU.items():
        write_csv(ROOT / "mmlu" / "test" / f"{subject}_test.csv", questions)
        write_csv(ROOT / "mmlu" / "dev" / f"{subject}_dev.csv", [MMLU_DEV])
    (ROOT / "gsm8k").mkdir(parents=True, exist_ok=True)
    for split, rows in (("test", GSM8K_TEST), ("train", GSM8K_TRAIN)):
        lines = [json.dumps({"question": q, "answer": a}) for q, a in rows]
        (ROOT / "gsm8k" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    items = []
    for item in LONGBENCH:
        item = dict(item)
        item["context"] = long_context(item.pop("needle"))
        items.append(item)
    (ROOT / "LongBench-v2").mkdir(parents=True, exist_ok=True)
    (ROOT / "LongBench-v2" / "data.json").write_text(json.dumps(items, indent=1) + "\n")
    (ROOT / "aime").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": i, "origin_prompt": q, "gold_answer": a}) for i, (q, a) in enumerate(AIME)]
    (ROOT / "aime" / "aime.jsonl").write_text("\n".join(lines) + "\n")
    write_csv(
        ROOT / "gpqa" / "gpqa_diamond.csv",
        [(q, right, *wrong, why, "5", q, right, *wrong, why) for q, right, *wrong, why in GPQA],
        GPQA_HEADER,
    )


if __name__ == "__main__":
    main()
