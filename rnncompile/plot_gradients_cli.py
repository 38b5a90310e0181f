"""`rnncompile plot gradients SPEC [SPEC ...]`, and the group that keeps `rnncompile plot SPEC` working beside it.

Only click is imported here (rnncompile --help loads no NumPy); the work is in rnncompile.plot_gradients.
"""
from __future__ import annotations

import click


class WithSubcommands(click.Group):
    """A command that also has subcommands: `plot gradients ...` runs the subcommand, anything else (`plot
    SPEC -o x.png`, `plot --help`) runs the original command, under its own usage line."""

    def __init__(self, default: click.Command, *subcommands: click.Command):
        super().__init__(name=default.name, commands={c.name: c for c in subcommands}, help=default.help,
                         short_help=default.short_help)
        self.default = default
        names = ", ".join(f"`rnncompile {default.name} {c.name} --help`" for c in subcommands)
        default.epilog = ((default.epilog + "\n\n") if default.epilog else "") + f"Subcommands: {names}."

    def make_context(self, info_name, args, parent=None, **extra):
        if args and args[0] in self.commands:
            return super().make_context(info_name, args, parent, **extra)
        return self.default.make_context(info_name, args, parent, **extra)


@click.command(name="gradients")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", help="override a dim of every spec, e.g. H=32")
@click.option("--weights", multiple=True, type=click.Path(dir_okay=False),
              help="trained params (.npz), one per spec in the same order [default: seeded random]")
@click.option("--radius", metavar="R,R,...", help="rescale the recurrent matrix to these spectral radii, a curve each")
@click.option("--recurrent", default="W_hh", show_default=True, help="--radius: the recurrent matrix's param name")
@click.option("--clip", type=float, help="also draw each curve with the gradient carried back clipped to this norm "
                                         "at every step")
@click.option("--loss-at", default="last", show_default=True, metavar="last|every|STEP",
              help="where the loss is: after the last step, at every step (summed), or after step STEP")
@click.option("--steps", "-t", type=click.IntRange(min=1), help="time steps [default: each spec's time dim]")
@click.option("--batch", "-b", default=8, show_default=True, type=click.IntRange(min=1),
              help="random sequences the norms are averaged over")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="seed for random weights, inputs and targets")
@click.option("--input-scale", default=1.0, show_default=True, type=float,
              help="random float inputs: standard normal times this (small: tanh in its linear range)")
@click.option("--state", help="the state to draw, as grad --wrt-state names it [default: h, else the first]")
@click.option("--title", help="the figure's title [default: where the loss is]")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="the picture: .png, .svg or .pdf")
def gradients(specs, dims, weights, radius, recurrent, clip, loss_at, steps, batch, seed, input_scale, state, title,
              output):
    """The norm of dL/dh_t against t on a log scale, one curve per spec (and per --radius): how far back the
    gradient reaches (vanishing, exploding, and --clip)."""
    from .files import prepare_output
    from .dims import parse_dim_options as parse_dims
    from .plot_gradients import FORMATS, curves, draw, parse_radii, summary

    made = prepare_output(output, FORMATS, "--output")  # refused before any work, as every command does
    if made:
        click.echo(f"created directory {made[-1]}", err=True)
    found = curves(list(specs), list(weights), parse_radii(radius), clip, loss_at, steps, batch, seed, state,
                   recurrent, parse_dims(dims), input_scale)
    for c in found:
        click.echo(summary(c))
    click.echo(f"wrote {draw(found, output, title)}")
