"""The authors' PyTorch training loop (CifarNetIF), re-measured on this machine. Optional.

Not part of the library and PyTorch is not a dependency: run it with a separate
interpreter that has ``torch`` (``python3 -m venv /tmp/torchvenv &&
/tmp/torchvenv/bin/pip install torch==2.13.0 numpy``)::

    /tmp/torchvenv/bin/python bench/torch_reference.py --time_steps=10 --repeats=3

It re-implements the structure of the authors' code (deepspike tandem learning,
``models/cifar10.py`` CifarNetIF and ``lib/snn.py`` / ``lib/functional.py``): every
spiking layer runs the coupled ANN (conv + BN + ReLU on the input spike *count*) with
autograd, then a per-step Python loop over T of ``F.conv2d`` on the spike train with
the BN-folded weights and the IF update, without autograd, and hands the output spike
count on with the ANN's gradient. Input: the image duplicated over T (analog current
into the first IF layer). Their ANN baseline ``CifarNet`` is timed alongside. Adam,
batch 32, float32; prints one JSON line and appends it as a ``bench.records`` record
(``--out``, default ``bench/results/records.jsonl``; ``bench.records`` needs only the
standard library).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class _CountCoupling(torch.autograd.Function):
    """Forward: the SNN's spike train and count; backward: the count's gradient to the ANN."""

    @staticmethod
    def forward(ctx, ann_out, spike_out):
        return spike_out, spike_out.sum(dim=1)

    @staticmethod
    def backward(ctx, grad_spikes, grad_count):
        return grad_count, None


def _if_loop(per_step_input, bias, threshold, time_steps):
    """The authors' per-step loop: ``mem += x(t) - theta s(t-1)``, ``s(t) = mem >= theta``."""
    outputs, mem, spike = [], None, None
    for t in range(time_steps):
        x = per_step_input(t) + bias
        mem = x if mem is None else mem + x - spike * threshold
        spike = (mem >= threshold).float()
        outputs.append(spike)
    return torch.stack(outputs, dim=1)


class TandemIF(nn.Module):
    """A spiking layer of CifarNetIF: the coupled ANN (``synapse`` + BN + ReLU on the input
    count, with autograd), then the IF SNN with the BN-folded weights on the spike train,
    one step at a time, without autograd; the output count carries the ANN's gradient."""

    def __init__(self, synapse, features):
        super().__init__()
        self.synapse = synapse
        self.bn = (nn.BatchNorm2d if isinstance(synapse, nn.Conv2d) else nn.BatchNorm1d)(features, 1e-4, 0.9)

    def forward(self, spikes, counts):
        ann = F.relu(self.bn(self.synapse(counts)))
        with torch.no_grad():
            ratio = self.bn.weight / torch.sqrt(self.bn.running_var)
            weight = self.synapse.weight * ratio.view(-1, *[1] * (self.synapse.weight.dim() - 1))
            bias = (self.synapse.bias - self.bn.running_mean) * ratio + self.bn.bias
            time_steps = spikes.shape[1]
            if isinstance(self.synapse, nn.Conv2d):
                stride = self.synapse.stride
                out = _if_loop(lambda t: F.conv2d(spikes[:, t], weight, None, stride, 1),
                               bias.view(1, -1, 1, 1) / time_steps, 1.0, time_steps)
            else:
                products = spikes.matmul(weight.t())
                out = _if_loop(lambda t: products[:, t], bias / time_steps, 1.0, time_steps)
        return _CountCoupling.apply(ann, out)


CONVS = [(3, 128, 1), (128, 256, 2), (256, 512, 2), (512, 1024, 1), (1024, 512, 1)]  # in, out, stride


class CifarNetIF(nn.Module):
    def __init__(self, time_steps):
        super().__init__()
        self.time_steps = time_steps
        self.convs = nn.ModuleList([TandemIF(nn.Conv2d(a, b, 3, s, 1), b) for a, b, s in CONVS])
        self.fc5 = TandemIF(nn.Linear(8 * 8 * 512, 1024), 1024)
        self.fc6 = nn.Linear(1024, 10)

    def forward(self, images):
        spikes = images.unsqueeze(1).expand(-1, self.time_steps, -1, -1, -1)  # InputDuplicate
        counts = images * self.time_steps
        for conv in self.convs:
            spikes, counts = conv(spikes, counts)
        spikes, counts = self.fc5(spikes.flatten(2), counts.flatten(1))
        return F.log_softmax(self.fc6(F.dropout(counts, 0.2, self.training)), dim=1)


class CifarNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Sequential(nn.Conv2d(a, b, 3, s, 1), nn.BatchNorm2d(b, 1e-4, 0.9))
                                    for a, b, s in CONVS])
        self.fc5 = nn.Sequential(nn.Linear(8 * 8 * 512, 1024), nn.BatchNorm1d(1024, 1e-4, 0.9))
        self.fc6 = nn.Linear(1024, 10)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        x = F.relu(self.fc5(x.flatten(1)))
        return F.log_softmax(self.fc6(F.dropout(x, 0.2, self.training)), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time_steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="", help="Records file (default bench/results/records.jsonl).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, 32, 32)
    labels = torch.randint(0, 10, (args.batch,))
    models = {"tandem": CifarNetIF(args.time_steps), "ann": CifarNet()}
    steps = {}
    for name, model in models.items():
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)

        def step(model=model, optimizer=optimizer):
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()

        step()
        steps[name] = step
    times = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    figures = {"torch": torch.__version__, "T": args.time_steps, "batch": args.batch,
               "step_s": times, "cpu_s": cpu,
               "images_per_s": {k: args.batch / v for k, v in med.items()},
               "tandem_over_ann": med["tandem"] / med["ann"]}
    print(json.dumps(figures))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import records

    records.write("torch_reference", figures, vars(args), path=args.out or records.RECORDS,
                  command=" ".join(["python", "bench/torch_reference.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
