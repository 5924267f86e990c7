import torch

from tav.timing import PhaseTimer


def test_phases_add_up_and_keep_their_first_call_apart():
    timer = PhaseTimer()
    for seconds in (3.0, 1.0, 1.0):
        timer.add("sampling", seconds)
    record = timer.as_record()["sampling"]
    assert record == {"seconds": 5.0, "calls": 3, "first": 3.0, "warmup": 2.0}


def test_a_phase_waits_for_the_gpu_unless_told_not_to(monkeypatch):
    waits = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: waits.append(args))
    timer = PhaseTimer(synchronize=True)
    with timer.phase("train_step", synchronize=False):
        pass
    assert waits == [] and timer.phases["train_step"].calls == 1
    with timer.phase("train_step"):
        pass
    assert len(waits) == 1 and timer.phases["train_step"].calls == 2
    with PhaseTimer(synchronize=False).phase("sampling"):  # a CPU run never waits
        pass
    assert len(waits) == 1
