"""Live loss plot for notebooks: train loss per step and eval loss, redrawn as events arrive.

    from sfd_client import Client, live_loss_plot
    records = live_loss_plot(Client(), job_id)   # returns when the job has ended

Needs matplotlib (python3-matplotlib); in Jupyter the figure is updated in place through
IPython.display, elsewhere it is redrawn with plt.pause. LossCurve holds the data and is usable
without matplotlib.
"""

from .records import Recorder


class LossCurve:
    """The series the plot draws: steps/losses of training and of evaluation."""

    def __init__(self):
        self._rec = Recorder()

    def add(self, event):
        """Takes a JobEvent; True when the curve changed."""
        return self._rec.add(event)

    @property
    def train(self):
        r = self._rec.records()
        return [x["step"] for x in r], [x["loss"] for x in r]

    @property
    def eval(self):
        e = self._rec.evals()
        return [s for s, _ in e], [v for _, v in e]

    def records(self):
        return self._rec.records()


def _pyplot():
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("live_loss_plot needs matplotlib (apt install python3-matplotlib, or "
                          "pip install matplotlib); Client.records gives the data without it") from e
    return matplotlib, plt


def draw(curve, ax, title=""):
    """Draws `curve` on a matplotlib Axes (clears it first)."""
    ax.clear()
    steps, losses = curve.train
    ax.plot(steps, losses, label="train loss", color="tab:blue")
    es, el = curve.eval
    if es:
        ax.plot(es, el, "o-", label="eval loss", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if steps or es:
        ax.legend()


def live_loss_plot(client, job_id, min_interval=1.0, figsize=(8, 4)):
    """Follows the job, redrawing at most every min_interval seconds; returns its records."""
    import time

    matplotlib, plt = _pyplot()
    try:
        from IPython import display as ipd  # Jupyter: update one output in place
        in_notebook = "inline" in matplotlib.get_backend() or "ipykernel" in matplotlib.get_backend()
    except ImportError:
        ipd, in_notebook = None, False
    fig, ax = plt.subplots(figsize=figsize)
    handle = ipd.display(fig, display_id=True) if in_notebook else None
    curve = LossCurve()
    title = "job %s" % job_id
    last_draw = 0.0

    def redraw():
        draw(curve, ax, title)
        if handle is not None:
            handle.update(fig)
        elif not in_notebook and matplotlib.get_backend().lower() != "agg":
            plt.pause(0.001)

    for event in client.events(job_id):
        if event.WhichOneof("kind") == "state":
            from .client import state_name
            title = "job %s: %s" % (job_id, state_name(event.state.state))
        if curve.add(event) and time.monotonic() - last_draw >= min_interval:
            redraw()
            last_draw = time.monotonic()
    redraw()
    if in_notebook:
        plt.close(fig)  # the displayed output keeps the last image
    return curve.records()
