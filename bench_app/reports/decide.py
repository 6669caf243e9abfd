"""The decision a staged run (execution.decide) tests after each stage, checked before any server starts.

Gate: against a baseline run folder, per dataset, its questions paired by prompt (a stage asks a subset, so
AISBench numbers its questions anew) with the baseline's answers; PASS / FAIL when the paired difference
crosses the group-sequential boundary against -max_drop (bench_app.run.sequential.gate_look). Parity: against
the reference that matches the model (conf/reference), consistent / below / above within +-tolerance
(parity_look), counting the reference's own sampling error where its questions and repeats are known.
The error rate alpha is shared out over the datasets (Bonferroni, as the gate of `compare` does) and each
verdict is one-sided at alpha / 2 per dataset: overall two-sided 1 - alpha confidence, as there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench_app.common.errors import UserError
from bench_app.config.schema import DecideConf
from bench_app.records.documents import PerDataset, StageLook
from bench_app.records.folder import RunFolder
from bench_app.reports.compare import diff_mappings, show_value
from bench_app.reports.matrix import dataset_config
from bench_app.reports.references import load_reference
from bench_app.run import sequential
from bench_app.run.planning.plan import DatasetPlan, RunPlan
from bench_app.rundir.documents import per_dataset_document

# Sections of a per_dataset document named without their prefix in a refusal (max_out_len, subsets, ...).
_SECTIONS = ("aisbench.", "model_config.")


def _answers(folder: RunFolder, short: str) -> Dict[Tuple[str, Any], bool]:
    """A run's scored answers of a dataset by (subset, prompt as sent)."""
    return {
        (str(r.subset), r.prompt): bool(r.correct)
        for r in folder.read_samples(short) or []
        if r.correct is not None and r.prompt is not None
    }


class Decider:
    def __init__(self, decide: DecideConf, plan: RunPlan, run_dir: Path, model_names: List[Optional[str]]):
        self.decide, self.run_dir = decide, Path(run_dir)
        self.kind = "gate" if decide.max_drop is not None else "parity"
        self.alpha = decide.alpha / len(plan.datasets) / 2  # one-sided per verdict, shared over datasets
        self.baseline: Dict[str, Dict[Tuple[str, Any], bool]] = {}
        self.reference: Dict[str, Tuple[float, Optional[int], str]] = {}
        if self.kind == "gate":
            self._check_baseline(plan)
        else:
            self._check_reference(plan, model_names)

    # -- before any server starts
    def _check_baseline(self, plan: RunPlan) -> None:
        folder = RunFolder(Path(self.decide.baseline))
        if not folder.is_run_folder():
            raise UserError(
                f"execution.decide.baseline: {self.decide.baseline} is not a bench_app run folder "
                "(no configs/config_snapshot.yaml)."
            )
        results, per_dataset = folder.dataset_results(), folder.read_per_dataset()
        for dataset in plan.datasets:
            where = f"execution.decide.baseline {folder.root.name}, dataset {dataset.short}"
            entry = results.get(dataset.short)
            if entry is None or entry.status != "ok":
                raise UserError(
                    f"{where}: no ok result to gate against ({entry.status if entry else 'absent'})."
                )
            differs = self._differences(per_dataset.get(dataset.short, PerDataset()), dataset, plan)
            if differs:
                raise UserError(
                    f"{where}: configured otherwise ({'; '.join(differs)}); gate like against like."
                )
            answers = _answers(folder, dataset.short)
            if not answers:
                raise UserError(f"{where}: no scored samples (samples.jsonl) to pair the run's answers with.")
            self.baseline[dataset.short] = answers

    @staticmethod
    def _differences(recorded: PerDataset, dataset: DatasetPlan, plan: RunPlan) -> List[str]:
        """What compare's gate would flag as configured otherwise (matrix.dataset_config of both per_dataset
        documents), and repeats: a staged decision pairs one answer per question."""
        planned = per_dataset_document(dataset, plan.group_of(dataset.short))
        said = [
            f"{key.split('.', 1)[1] if key.startswith(_SECTIONS) else key}: {show_value(theirs)} there, "
            f"{show_value(mine)} here"
            for key, theirs, mine in diff_mappings(dataset_config(recorded), dataset_config(planned))
        ]
        repeats = recorded.aisbench.repeats or 1
        if int(repeats) != 1:
            said.append(f"repeats={repeats} there: a staged decision pairs one answer per question")
        return said

    def _check_reference(self, plan: RunPlan, model_names: List[Optional[str]]) -> None:
        try:
            chosen, reference = load_reference(self.decide.reference, model_names)
        except UserError as error:  # its flags are parity's; a run names the reference in its settings
            raise UserError(
                f"execution.decide.tolerance: parity needs a reference: {error} (here: "
                "execution.decide.reference=NAME)"
            ) from None
        for dataset in plan.datasets:
            mode = "thinking" if dataset.evaluator.thinking in (True, None) else "non_thinking"
            published = reference.figure(dataset.short, mode)
            if published is None or published.score is None:
                raise UserError(
                    f"execution.decide.tolerance: the reference {chosen} has no {mode.replace('_', '-')} "
                    f"figure for dataset {dataset.short}: parity cannot decide it; leave the dataset out."
                )
            self.reference[dataset.short] = (float(published.score), published.samples, chosen)

    # -- after each stage
    def look(self, dataset: DatasetPlan, stage: int) -> StageLook:
        fractions = [n / dataset.stage_questions[-1] for n in dataset.stage_questions]
        boundary = sequential.boundaries(fractions, self.alpha)[stage]
        answers = _answers(RunFolder(self.run_dir), dataset.short)
        if self.kind == "gate":
            baseline = self.baseline[dataset.short]
            paired = [(baseline[key], right) for key, right in answers.items() if key in baseline]
            if not paired:  # nothing to test yet: the next stage asks more (the last one says why)
                return StageLook(verdict=None, questions=0, note="no answer paired by prompt")
            look = sequential.gate_look(
                sum(1 for base, run in paired if run and not base),
                sum(1 for base, run in paired if base and not run),
                len(paired),
                float(self.decide.max_drop),
                boundary,
            )
            against = {"baseline": str(self.decide.baseline), "max_drop": self.decide.max_drop}
        else:
            reference, samples, chosen = self.reference[dataset.short]
            look = sequential.parity_look(
                sum(answers.values()),
                len(answers),
                reference,
                float(self.decide.tolerance),
                boundary,
                samples,
            )
            against = {"reference": chosen, "published": reference, "tolerance": self.decide.tolerance}
        return StageLook(**look.to_dict(), **against, alpha=round(self.alpha, 6))
