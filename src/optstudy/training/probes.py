"""What the classic write-ups measure inside an epoch, recorded beside the per-epoch metrics of a
solo run (a stack of runs refuses them):

    --window-batches N        the training accuracy (and mean minibatch loss) of every N minibatches,
                              counted across epochs as the PyTorch-tutorial posts count them: from
                              the logits the epoch keeps anyway, at the epoch's end, so no step
                              waits for the device
    --eval-every-examples M   the loss on the whole training set every M examples, as D2L's
                              optimisation chapter draws it (an evaluation: its time is not the epoch's)
    --time-steps              the seconds spent in optimizer.step() alone (on a GPU each step then
                              synchronises: the run is slower, its numbers the same)

Record keys: window_batches, window_acc, window_loss, window_open (the window the epoch left open);
eval_every_examples, eval_examples, eval_train_loss; step_seconds (one value per epoch).
"""
import time

import torch


class Probes:
    """The measurements one solo run asked for, kept in its metrics (which a checkpoint holds, so a
    resumed run continues its windows where they stopped)."""

    def __init__(self, config, metrics, n_train, evaluate_train, device):
        self.window, self.every, self.time_steps = config.window_batches, config.eval_every_examples, config.time_steps
        self.metrics, self.n_train, self.evaluate_train, self.device = metrics, n_train, evaluate_train, device
        if self.window:
            metrics.setdefault("window_batches", self.window)
            for key in ("window_acc", "window_loss"):
                metrics.setdefault(key, [])
            metrics.setdefault("window_open", {"batches": 0, "correct": 0, "samples": 0, "loss_sum": 0.0})
        if self.every:
            metrics.setdefault("eval_every_examples", self.every)
            metrics.setdefault("eval_examples", [])
            metrics.setdefault("eval_train_loss", [])
        if self.time_steps:
            metrics.setdefault("step_seconds", [])
        self.eval_seconds = self.step_seconds = 0.0
        self.seen = 0

    @staticmethod
    def wanted(config):
        return bool(config.window_batches or config.eval_every_examples or config.time_steps)

    def start_epoch(self, epoch):
        self.eval_seconds = self.step_seconds = 0.0
        self.seen = (epoch - 1) * self.n_train           # examples seen before this epoch, as D2L counts them

    def step(self, optimizer_step):
        """Run optimizer_step(), timed when asked."""
        if not self.time_steps:
            return optimizer_step()
        sync(self.device)
        start = time.perf_counter()
        optimizer_step()
        sync(self.device)
        self.step_seconds += time.perf_counter() - start

    def after_step(self, model, batch_size):
        """The whole-data loss each time the examples seen pass a multiple of M."""
        before, self.seen = self.seen, self.seen + batch_size
        if not self.every or self.seen // self.every == before // self.every:
            return
        start = time.perf_counter()
        self.metrics["eval_examples"].append(self.seen)
        self.metrics["eval_train_loss"].append(self.evaluate_train())
        model.train()
        self.eval_seconds += time.perf_counter() - start

    def finish_epoch(self, losses, outputs, labels):
        """The epoch's windows from its minibatch losses (floats) and logits; its step seconds."""
        if self.time_steps:
            self.metrics["step_seconds"].append(self.step_seconds)
        if not self.window:
            return
        correct = [0] * len(losses) if outputs[0] is None else torch.stack(
            [(o.argmax(1) == y).sum() for o, y in zip(outputs, labels)]).tolist()
        open_ = self.metrics["window_open"]
        for loss, right, y in zip(losses, correct, labels):
            open_["batches"] += 1
            open_["correct"] += right
            open_["samples"] += len(y)
            open_["loss_sum"] += loss
            if open_["batches"] == self.window:
                self.close_window(open_, accuracy=outputs[0] is not None)

    def close_window(self, open_, accuracy):
        self.metrics["window_acc"].append(100.0 * open_["correct"] / open_["samples"] if accuracy else None)
        self.metrics["window_loss"].append(open_["loss_sum"] / open_["batches"])
        open_.update(batches=0, correct=0, samples=0, loss_sum=0.0)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
