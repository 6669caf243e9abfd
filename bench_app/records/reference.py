"""A parity reference: the published (or saved) scores of a model, one YAML file each (conf/reference/), what
`bench-app parity` and execution.decide compare a run with."""

from __future__ import annotations

from typing import ClassVar, Dict, List, Optional, Sequence

from pydantic import Field

from bench_app.records.base import Record


class PublishedFigure(Record):
    """reference datasets.<dataset>.<mode>: one published score with the settings it was measured at."""

    LEAVE_OUT: ClassVar[tuple] = (None, [], {})
    score: Optional[float] = None
    metric: Optional[str] = None  # accuracy
    variant: Optional[str] = None  # the dataset's variant as the source names it (GPQA-Diamond)
    questions: Optional[int] = None
    shots: Optional[int] = None  # few-shot examples in each prompt
    max_out_len: Optional[int] = None
    repeats: Optional[int] = None  # samples per question the figure averages
    sampling: Dict[str, object] = Field(default_factory=dict)  # temperature, top_p, presence_penalty, ...
    names: List[str] = Field(default_factory=list)  # the AISBench dataset configs that are this variant
    prompt: Optional[str] = None  # how the source's prompt differs from the dataset's official one
    where: Optional[str] = None  # where the source gives it (table, page)
    verified: Optional[bool] = None  # checked against the source; unset: as the whole reference says

    @property
    def samples(self) -> Optional[int]:
        """Answers the figure averages (questions x repeats), where the reference says."""
        return self.questions * (self.repeats or 1) if self.questions else None


class ParityReference(Record):
    """conf/reference/<name>.yaml (or a --reference-dir's). A file may hold more keys of its own (e.g. the
    sampling its figures share, as YAML anchors): they are kept."""

    OPEN: ClassVar[bool] = True
    LEAVE_OUT: ClassVar[tuple] = (None, [], {})
    model: Optional[str] = None
    matches: List[str] = Field(default_factory=list)  # a run's model path or served name contains one
    excludes: List[str] = Field(default_factory=list)  # ... and none of these
    verified: Optional[bool] = None  # every figure checked against the source (a figure may say otherwise)
    source: Optional[str] = None
    # per dataset and mode (thinking, non_thinking, or any: a model without modes)
    datasets: Dict[str, Dict[str, PublishedFigure]] = Field(default_factory=dict)
    not_reported: Dict[str, str] = Field(default_factory=dict)  # dataset -> why the source gives no figure

    def match_length(self, model_names: Sequence[Optional[str]]) -> int:
        """How specifically it matches a run's model: its longest pattern found (0: none), so that
        Qwen3-30B-A3B-Base takes the base model's reference, not the chat model's it also contains."""
        names = [str(model).lower() for model in model_names if model]
        if any(str(x).lower() in name for x in self.excludes for name in names):
            return 0
        patterns = (str(m).lower() for m in self.matches)
        return max((len(p) for p in patterns if any(p in name for name in names)), default=0)

    def figure(self, dataset: str, mode: str) -> Optional[PublishedFigure]:
        """Its figure for a dataset in a mode (`any`: a model without modes, e.g. a base model)."""
        figures = self.datasets.get(dataset) or {}
        return figures.get(mode) or figures.get("any")

    def is_verified(self, figure: PublishedFigure) -> bool:
        """A figure is checked against its source when it says so, else when the whole reference does."""
        return bool(self.verified if figure.verified is None else figure.verified)
