"""Energy-volume curves (zero-shot equations of state)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def energy_volume(eos_results, **layout) -> go.Figure:
    """E(V) per atom for one or several ``EquationOfState`` results, minimum marked."""
    fig = go.Figure()
    for eos in eos_results if isinstance(eos_results, (list, tuple)) else [eos_results]:
        n_atoms = _atoms_in_formula(eos.formula)
        fig.add_trace(
            go.Scatter(
                x=eos.volumes_A3 / n_atoms,
                y=(eos.energies_eV - eos.e0_eV) / n_atoms * 1e3,
                mode="markers+lines",
                name=f"{eos.model}: V0 {eos.v0_A3 / n_atoms:.2f} Å³/atom, B {eos.bulk_modulus_GPa:.0f} GPa",
            )
        )
    fig.update_layout(
        template="plotly_white",
        xaxis_title="volume (Å³/atom)",
        yaxis_title="E - E0 (meV/atom)",
        legend=dict(orientation="h", y=-0.25),
        **{"width": 640, "height": 440, **layout},
    )
    return fig


def _atoms_in_formula(formula: str) -> int:
    from ase.formula import Formula

    return int(np.sum(list(Formula(formula).count().values())))
