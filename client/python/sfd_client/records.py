"""Job events as flat records, ready for ``pandas.DataFrame(records)``.

One record per optimizer step (all of sfd.v1.StepMetrics, the peak memory per tier flattened,
plus derived tokens_per_second and model_tflops) with ``eval_loss`` filled on the steps where
an evaluation ran (None elsewhere, NaN in pandas). Re-run steps after a crash-resume replace
the earlier record of the same step, so every step appears once, in order.
"""

STEP_FIELDS = (
    "step", "total_steps", "loss", "lr", "grad_norm", "tokens", "target_tokens",
    "step_seconds", "forward_seconds", "backward_seconds", "optimizer_seconds",
    "stall_weights_seconds", "stall_optimizer_seconds", "stall_activations_seconds",
    "h2d_bytes", "d2h_bytes", "nvme_bytes", "device_reserved", "host_rss", "model_flops",
)
PEAK_FIELDS = ("device", "pinned", "host", "nvme")
COLUMNS = (("job_id", "time_ms") + STEP_FIELDS + tuple("peak_" + f for f in PEAK_FIELDS)
           + ("tokens_per_second", "model_tflops", "eval_loss"))


def step_record(event):
    """The record of one step event (sfd.v1.JobEvent with ``step`` set)."""
    s = event.step
    r = {"job_id": event.job_id, "time_ms": event.time_ms}
    for f in STEP_FIELDS:
        r[f] = getattr(s, f)
    for f in PEAK_FIELDS:
        r["peak_" + f] = getattr(s.peak, f)
    r["tokens_per_second"] = s.tokens / s.step_seconds if s.step_seconds > 0 else 0.0
    r["model_tflops"] = s.model_flops / s.step_seconds / 1e12 if s.step_seconds > 0 else 0.0
    r["eval_loss"] = None
    return r


class Recorder:
    """Accumulates events into step records (used by Client.records and the live plot)."""

    def __init__(self):
        self._by_step = {}
        self._evals = {}

    def add(self, event):
        """Takes any JobEvent; returns True when it changed the records (a step or an eval)."""
        kind = event.WhichOneof("kind")
        if kind == "step":
            r = step_record(event)
            r["eval_loss"] = self._evals.get(r["step"])
            self._by_step[r["step"]] = r
            return True
        if kind == "eval":
            self._evals[event.eval.step] = event.eval.eval_loss
            if event.eval.step in self._by_step:
                self._by_step[event.eval.step]["eval_loss"] = event.eval.eval_loss
            return True
        return False

    def records(self):
        return [self._by_step[k] for k in sorted(self._by_step)]

    def evals(self):
        """[(step, eval_loss)] in step order (also evals of steps without a step record)."""
        return sorted(self._evals.items())


def to_records(events):
    """Step records of an iterable of JobEvents (see the module docstring)."""
    rec = Recorder()
    for e in events:
        rec.add(e)
    return rec.records()
