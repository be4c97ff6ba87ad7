"""Launched by tests/test_launch.py through `accelerate launch`: gathers N items across processes.

Writes, on the main process, a JSON file with the number of processes and the gathered values.
"""
import argparse
import json

import torch
from torch.utils.data import DataLoader, TensorDataset

from utils.runtime import make_accelerator


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    accelerator = make_accelerator()
    loader = accelerator.prepare(DataLoader(TensorDataset(torch.arange(args.n)), batch_size=3, shuffle=False))
    gathered = [accelerator.gather_for_metrics(batch) for (batch,) in loader]
    if accelerator.is_main_process:
        values = torch.cat(gathered).tolist()
        with open(args.out, "w") as f:
            json.dump({"num_processes": accelerator.num_processes, "values": values,
                       "device": str(accelerator.device)}, f)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # tear the process group down before exit (gloo aborts otherwise, at random)


if __name__ == "__main__":
    main()
