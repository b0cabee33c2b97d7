"""Checks of the numerical library under the project, kept for audits rather than run by it:
``scripts/bf16_grad_audit.py`` and the tests use them to measure, layer by layer, which
convolutions torch's bf16 CPU kernels get wrong (what ``fplnet.runtime.bf16_channels_last_hazard``
guards the trainer against; docs/benchmarks.md, "bf16 and channels_last on the CPU")."""
from __future__ import annotations

import torch


def dilated_conv_shapes(model: torch.nn.Module, size=(360, 480)) -> set:
    """(in, out, kernel, dilation, groups, input height, input width) of every dilated
    convolution of ``model``, as it meets them on one input of ``size``."""
    shapes = set()

    def record(module, inputs, _):
        shapes.add((module.in_channels, module.out_channels, module.kernel_size, module.dilation,
                    module.groups, *inputs[0].shape[-2:]))
    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, torch.nn.Conv2d) and max(m.dilation) > 1]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *size))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def bf16_weight_grad_error(shape: tuple, channels_last: bool, batch: int = 2, wrap=None) -> float:
    """Relative L2 error of a CPU bf16-autocast convolution's weight gradient against fp32
    contiguous, for one ``dilated_conv_shapes`` entry in one layout (inf when not finite).
    ``wrap`` (e.g. a ``torch.compile``) is applied to the bf16 convolution before it runs."""
    cin, cout, kernel, dilation, groups, height, width = shape
    x = torch.randn(batch, cin, height, width, generator=torch.Generator().manual_seed(1))
    grads = []
    for layout, bf16 in ((torch.contiguous_format, False),
                         (torch.channels_last if channels_last else torch.contiguous_format, True)):
        with torch.random.fork_rng(devices=[]):   # the same initial weights, the caller's RNG untouched
            torch.manual_seed(0)
            conv = torch.nn.Conv2d(cin, cout, kernel, dilation=dilation, groups=groups, bias=False,
                                   padding=tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel)))
        conv.to(memory_format=layout)
        step = wrap(conv) if bf16 and wrap is not None else conv
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = step(x.contiguous(memory_format=layout))
        out.float().square().mean().backward()
        grads.append(conv.weight.grad)
    reference, got = grads
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - reference).norm() / reference.norm()).item()
