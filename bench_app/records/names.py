"""The names of the run folder's files, declared once (bench_app.records.folder.RunFolder builds the paths).

A script that runs in the evaluator's own environment (aisbench_samples.py) cannot import bench_app: it is
handed the paths it reads and writes on its command line.
"""

CONFIGS_DIR = "configs"
METADATA_FILE = "metadata.yaml"  # configs/: runtime, versions, git, environment, status
SNAPSHOT_FILE = "config_snapshot.yaml"  # configs/: the resolved config (replayable)
ORIGINAL_FILE = "config_original.yaml"  # configs/: what the user asked for
REPRODUCE_FILE = "reproduce.sh"  # configs/: re-runs the experiment into a new run folder
GIT_DIFF_FILE = "git_diff.patch"  # configs/: the uncommitted changes
PER_DATASET_DIR = "per_dataset"  # configs/per_dataset/<short>.yaml
RESULTS_FILE = "results.yaml"  # every dataset's status and metrics (a sweep's folder: its summary)
SUMMARY_FILE = "summary.md"  # the results for people (a run's, a sweep's)
REPORT_FILE = "report.html"
ERROR_FILE = "error.txt"  # why a sweep job could not start
LOGS_DIR = "logs"
CACHE_FILE = "requests.sqlite"  # the run's request cache (or a shared one's name in its folder)
SAMPLES_FILE = "samples.jsonl"  # <dataset>/: one record per sample
REQUESTS_FILE = "requests.jsonl"  # <dataset>/: the relay's record of every request, as the server answered
SLURM_JOBS_FILE = "slurm_jobs.yaml"  # a sweep's folder: the SLURM jobs of its jobs
JOB_FILE = "job.yaml"  # a sweep job's own record (SLURM launcher)
RUNS_INDEX_FILE = ".bench_app_runs.sqlite"  # outputs/: the index `bench-app runs` answers from
