"""Progress lines for log files and the closing summary line of every stage."""

import io

from tqdm import tqdm

from connectome_gnn.progress import LineProgress, progress_bar, summary_line


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_line_progress_writes_a_line_per_interval_with_an_estimate():
    out, clock = io.StringIO(), _Clock()
    bar = LineProgress(1000, initial=200, desc="train", file=out, every_s=25, clock=clock)
    bar.set_postfix(loss=0.0123456, refresh=False)
    for _ in range(100):  # 100 iterations in 12.5 s: no line yet
        clock.t += 0.125
        bar.update(1)
    assert out.getvalue() == ""
    for _ in range(100):  # 25 s after 200 iterations: 600 more take ~75 s
        clock.t += 0.125
        bar.update(1)
    assert out.getvalue().splitlines() == [
        "train: 400/1000 (40.0 %), loss 0.01235, 25 s elapsed, ~75 s left"
    ]
    clock.t += 600
    bar.update(500)  # a line (the interval has passed) ...
    bar.update(100)  # ... then none
    bar.close()  # the final state, once
    bar.close()
    assert out.getvalue().splitlines()[1:] == [
        "train: 900/1000 (90.0 %), loss 0.01235, 10.4 min elapsed, ~89 s left",
        "train: 1000/1000 (100.0 %), loss 0.01235, 10.4 min elapsed",
    ]
    assert "\r" not in out.getvalue()


def test_progress_bar_is_a_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(progress_bar(10, file=io.StringIO()), LineProgress)
    bar = progress_bar(10, file=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    silent, out = progress_bar(10, disable=True, file=io.StringIO()), io.StringIO()
    silent.update(5)
    silent.close()
    assert out.getvalue() == ""


def test_summary_line():
    line = summary_line(
        "train", {"status": "ok", "final_loss": 1.234567e-3, "iterations": 250, "resumed": None}
    )
    assert line == "train summary: status ok, final_loss 0.001235, iterations 250, resumed none"
