"""Render a dataset's prompts exactly as AISBench sends them and count their tokens.

Runs inside the evaluator's environment (AISBench + transformers), not bench_app's:
    python aisbench_prompts.py TOKENIZER_PATH TASK_FILE [TASK_FILE ...]
Each TASK_FILE is an aisbench_task.py bench_app wrote. Prompts come from AISBench's own dataset
loader, retriever, prompt template and inferencer (get_data_list), turned into chat messages the way
its VLLMCustomAPIChat model does; the model's tokenizer applies its chat template, as the server will.
Prints one JSON document: {task_file: {"prompt_tokens": [...], "max_out_len": [...], "subset_sizes": [...]}}
or {"error": ...}.
Exit 3 when the tokenizer cannot be loaded offline.
"""

import json
import sys
import warnings

ROLE_MAP = {"HUMAN": "user", "BOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}


def messages_of(prompt):
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [
        {"role": ROLE_MAP.get(item.get("role", ""), item.get("role", "")), "content": item["prompt"]}
        for item in prompt
    ]


def count_tokens(tokenizer, messages):
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])


def render(task_file, tokenizer):
    from ais_bench.benchmark.registry import ICL_INFERENCERS, ICL_RETRIEVERS
    from ais_bench.benchmark.utils.config import build_dataset_from_cfg
    from mmengine.config import Config

    cfg = Config.fromfile(task_file)
    model_cfg = cfg.models[0]
    if not isinstance(model_cfg["type"], str):
        model_cfg["type"] = model_cfg["type"].__name__  # AISBench's builder expects the registered name
    tokens, max_out, subset_sizes, subset_names = [], [], [], []
    for dataset_cfg in cfg.datasets:
        subset_sizes.append(0)
        subset_names.append(str(dataset_cfg.get("abbr") or dataset_cfg.get("name") or len(subset_names)))
        infer_cfg = dataset_cfg["infer_cfg"]
        inferencer_cfg = dict(infer_cfg["inferencer"], model_cfg=model_cfg, batch_size=1)
        inferencer = ICL_INFERENCERS.build(inferencer_cfg)
        retriever_cfg = dict(
            infer_cfg["retriever"],
            dataset=build_dataset_from_cfg(dataset_cfg),
            prompt_template=infer_cfg.get("prompt_template"),
            ice_template=infer_cfg.get("ice_template"),
        )
        for data in inferencer.get_data_list(ICL_RETRIEVERS.build(retriever_cfg)):
            tokens.append(count_tokens(tokenizer, messages_of(data["prompt"])))
            max_out.append(int(data.get("max_out_len") or model_cfg.get("max_out_len") or 0))
            subset_sizes[-1] += 1
    # AISBench's --num-prompts keeps the first N of each subset: the budget needs their boundaries.
    return {
        "prompt_tokens": tokens,
        "max_out_len": max_out,
        "subset_sizes": subset_sizes,
        "subset_names": subset_names,
    }


def main():
    warnings.filterwarnings("ignore")
    tokenizer_path, task_files = sys.argv[1], sys.argv[2:]
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means: no tokenizer offline
        print(
            json.dumps(
                {
                    "error": f"cannot load the tokenizer of {tokenizer_path!r} offline: "
                    f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                }
            )
        )
        sys.exit(3)
    result = {}
    for task_file in task_files:
        try:
            result[task_file] = render(task_file, tokenizer)
        except Exception as error:  # noqa: BLE001 - one dataset's failure is reported, the others go on
            result[task_file] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
