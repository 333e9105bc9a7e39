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


def format_duration(seconds: float) -> str:
    """``3h 05m``, ``4m 09s`` or ``12s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def shown_losses(record: dict) -> dict[str, float]:
    """The losses a progress line shows: ``{"loss": …}`` of a one-group objective, or each
    parameter group's loss of a several-group one (the trainer logs them as ``<group>/loss``:
    ``{"discriminator loss": …, "generator loss": …}``), in the order they were logged."""
    if "loss" in record:
        return {"loss": record["loss"]}
    groups = {k[: -len("/loss")]: v for k, v in record.items() if k.endswith("/loss")}
    if not groups:
        return {"loss": float("nan")}
    return {f"{group} loss": value for group, value in groups.items()}


def format_losses(record: dict) -> str:
    """``loss 1.2345`` or ``discriminator loss 1.3210, generator loss 0.8123``."""
    return ", ".join(f"{name} {value:.4f}" for name, value in shown_losses(record).items())


class MetricsLog:
    """Writes each logged step to ``metrics.jsonl`` and TensorBoard, and shows progress: a tqdm
    bar on a terminal, else (SLURM, nohup, a pipe) one line per logged step with step/total,
    the rate and the time left. The first step after a start includes compilation: its time is
    logged on its own and kept out of the rate and the estimate."""

    def __init__(self, workdir: str, start_step: int, total_steps: int, enabled: bool = True):
        self.enabled = enabled
        self.start_step = start_step
        self.total_steps = total_steps
        self._last_time = time.perf_counter()
        self._first_step = True
        self._timed_from: tuple[int, float] | None = None  # (step, time) after compilation
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
            rate = None
        else:
            rate = steps_done / max(now - self._last_time, 1e-9)
            record = {"step": step}
        self._last_time = now
        record.update({k: float(np.asarray(v)) for k, v in metrics.items()})
        record["steps_per_sec"] = rate
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key != "step" and value is not None and np.isfinite(value):
                self._tensorboard.add_scalar(key, value, step)
        shown = {name: f"{value:.4f}" for name, value in shown_losses(record).items()}
        if rate is not None:
            shown["steps/s"] = f"{rate:.2f}"
        if self._interactive:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(shown)
        else:
            print(self.progress_line(step, record, now), flush=True)

    def progress_line(self, step: int, record: dict, now: float) -> str:
        """``step 250/500 (50%): loss 1.2345, 2.10 steps/s, ETA 1m 59s`` (each group's loss for
        an objective of several parameter groups, `format_losses`); the rate and the ETA
        average over the steps since the first one (whose time is compilation's)."""
        total = self.total_steps
        line = f"step {step}/{total} ({100 * step / max(total, 1):.0f}%): "
        line += format_losses(record)
        if self._timed_from is None:
            self._timed_from = (step, now)
            compile_sec = record.get("compile_and_first_step_sec")
            if compile_sec is not None:
                line += f", compile and first step {compile_sec:.1f}s"
            return line
        first_step, first_time = self._timed_from
        rate = (step - first_step) / max(now - first_time, 1e-9)
        line += f", {rate:.2f} steps/s"
        if step < total and rate > 0:
            line += f", ETA {format_duration((total - step) / rate)}"
        return line

    def close(self) -> None:
        if self.enabled:
            self._bar.close()
            self._file.close()
            self._tensorboard.close()
