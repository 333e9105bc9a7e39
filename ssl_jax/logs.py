"""Training logs: ``metrics.jsonl``, TensorBoard event files and a progress line.

Only process 0 writes. On resume, lines of ``metrics.jsonl`` past the restored step (logged
after the last checkpoint of the interrupted run) are dropped, so the file reads as one run.
"""

import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm


def _parse_record(line: str) -> dict | None:
    """One record of metrics.jsonl, or None for a blank or cut-short line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "step" in record else None


class MetricsLog:
    def __init__(self, workdir: str, start_step: int, total_steps: int, enabled: bool = True):
        self.enabled = enabled
        self.start_step = start_step
        self._last_time = time.perf_counter()
        self._first_step = True
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        self.path = os.path.join(workdir, "metrics.jsonl")
        self._keep_lines_up_to(start_step)
        self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the whole run
        self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))
        self._interactive = sys.stderr.isatty()
        self._bar = tqdm(
            total=total_steps, initial=start_step, disable=not self._interactive, unit="step"
        )

    def _keep_lines_up_to(self, step: int) -> None:
        """Keeps the records up to ``step``; rewrites the file atomically (tmp + rename)."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            records = [_parse_record(line) for line in f]
        # A run killed while writing leaves at most its last line cut short: it is dropped.
        lines = [json.dumps(r) + "\n" for r in records if r is not None and r["step"] <= step]
        temporary = self.path + ".tmp"
        with open(temporary, "w") as f:
            f.writelines(lines)
        os.replace(temporary, self.path)

    def write(self, step: int, metrics: dict, steps_done: int) -> None:
        """Logs the metrics of ``step``; ``steps_done`` steps ran since the previous call."""
        now = time.perf_counter()
        if self._first_step:
            # The first step includes compilation: report it on its own, not as a rate.
            record = {"step": step, "compile_and_first_step_sec": now - self._last_time}
            self._first_step = False
            self._last_time = now
            rate = None
        else:
            rate = steps_done / max(now - self._last_time, 1e-9)
            self._last_time = now
            record = {"step": step}
        record.update({k: float(np.asarray(v)) for k, v in metrics.items()})
        record["steps_per_sec"] = rate
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key != "step" and value is not None and np.isfinite(value):
                self._tensorboard.add_scalar(key, value, step)
        shown = {"loss": f"{record.get('loss', float('nan')):.4f}"}
        if rate is not None:
            shown["steps/s"] = f"{rate:.2f}"
        if self._interactive:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(shown)
        else:
            print(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in shown.items()), flush=True)

    def close(self) -> None:
        if self.enabled:
            self._bar.close()
            self._file.close()
            self._tensorboard.close()
