"""Loading script of bench_app's LiveCodeBench sample, in the layout of the published dataset
(livecodebench/code_generation_lite): AISBench's LCBCodeGenerationDataset calls
`load_dataset(path, split="test", version_tag=...)`. The published script maps each version tag to its
files (test.jsonl ... test6.jsonl); this sample has one file, test.jsonl, read for every tag."""

import json

import datasets

FEATURES = datasets.Features(
    {
        name: datasets.Value("string")
        for name in (
            "question_title",
            "question_content",
            "platform",
            "question_id",
            "contest_id",
            "contest_date",
            "starter_code",
            "difficulty",
            "public_test_cases",
            "private_test_cases",
            "metadata",
        )
    }
)


class SampleConfig(datasets.BuilderConfig):
    def __init__(self, version_tag="release_v1", **kwargs):
        super().__init__(name=version_tag, version=datasets.Version("1.0.0"), **kwargs)
        self.version_tag = version_tag


class CodeGenerationLiteSample(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = SampleConfig
    DEFAULT_CONFIG_NAME = "release_v1"

    def _info(self):
        return datasets.DatasetInfo(description="bench_app's LiveCodeBench sample", features=FEATURES)

    def _split_generators(self, dl_manager):
        file = dl_manager.download("test.jsonl")  # beside this script (datasets copies the script away)
        return [datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"file": file})]

    def _generate_examples(self, file):
        with open(file, encoding="utf-8") as handle:
            for index, line in enumerate(handle):
                if line.strip():
                    yield index, json.loads(line)
