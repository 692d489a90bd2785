"""Few-shot readouts in closed form: the model is linear in its readouts' last weights.

A frozen MACE's energy is ``E = sum_i E0[Z_i] + scale * sum_i w · h_i + ...``,
with ``h_i`` the features entering the last linear layer of each readout.
So energies and forces are *linear* in those weights ``w`` and in the E0s,
and the loss of gradient training (``course_lib.training``) restricted to
them is a weighted least-squares problem with one exact solution:

* ``readout_design``: the design of a set of frames, computed once: the
  derivatives of each energy (``energy_rows``, readout weights then one E0
  column per model element) and of each force component (``force_rows``)
  with respect to those parameters, and the frozen model's predictions.
  With forces it costs one backward pass per readout weight.
* ``normal_equations`` + ``solve_readouts``: the one solver. Energies per
  atom weighted ``energy_weight / n_structures``, force components
  ``forces_weight / n_components`` (the gradient loss's own weights), a ridge
  ``ridge * mean(diag A'WA)`` on the weights (an L2 pull toward the
  pre-trained weights, i.e. a Gaussian prior), and the posterior covariance
  of the weights that comes with it.
* ``fit_readouts_closed_form``: design, solve and write the result into a model;
  ``DesignCache`` lets several fits from the same model on the same frames
  share one design.
* ``SharedClosedForm``: many fits (learning-curve subsets, committee members
  on bootstrap resamples) sharing one design pass: each fit is then one
  small linear solve, with the same numbers as fitting it alone.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import numpy as np
import torch
from ase import Atoms
from mace.tools.scatter import scatter_sum

from course_lib import data as ds
from course_lib import mace_models
from course_lib.composition import composition_matrix, warn_if_compositions_collinear
from course_lib.graphs import cpu_edge_budget, graph_loader
from course_lib.training import LossWeights


@dataclass(frozen=True)
class ReadoutPosterior:
    """Closed-form fit of the readouts' last linear layers (ridge = Gaussian prior).

    ``mean`` holds the fitted weights, concatenated in ``parameter_names``
    order; ``covariance`` their posterior covariance ``s2 * (A'WA + ridge*I)^-1``
    with ``s2`` (``noise_variance``) the residual variance of the loss-weighted
    label rows.
    """

    parameter_names: tuple[str, ...]
    parameter_sizes: tuple[int, ...]
    mean: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    noise_variance: float
    ridge: float
    n_energy_labels: int
    n_force_labels: int


# --------------------------------------------------------------------------- the design


def readout_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The last linear layer of each readout, by parameter-name prefix.

    The readout output (and so the energy and forces) is linear in their weights.
    """
    layers = {}
    for i, block in enumerate(model.readouts):
        name = "linear" if hasattr(block, "linear") else "linear_2"
        layer = getattr(block, name)
        extra = [n for n, _ in layer.named_parameters() if n != "weight"]
        if extra:
            raise ValueError(
                f"readouts.{i}.{name} has parameters {extra}; closed form needs bias-free readouts"
            )
        layers[f"readouts.{i}.{name}"] = layer
    return layers


def readout_column_maps(layers: dict[str, torch.nn.Module], dtype: torch.dtype) -> dict:
    """For each layer, the matrix ``B`` with ``layer(x; w) = x @ B @ w`` (one output channel).

    A readout's last layer is bilinear in its input ``x`` and weights ``w``, so
    its output for the one-hot weight ``e_k`` is ``x @ B[:, k]``: the design's
    columns for all weights of a batch are then one matrix product, not one
    layer call per weight. ``B`` is read off by calling the layer on unit
    inputs with unit weights (e3nn's path normalisation included).
    """
    maps = {}
    for key, layer in layers.items():
        unit_inputs = torch.eye(layer.irreps_in.dim, dtype=dtype)
        unit_weights = torch.eye(layer.weight.numel(), dtype=dtype)
        maps[key] = torch.stack(
            [
                torch.func.functional_call(layer, {"weight": w}, (unit_inputs,))[:, 0]
                for w in unit_weights
            ],
            dim=1,
        )
    return maps


def readout_design_rows(model, batch, layers, *, with_forces: bool, column_maps=None):
    """Energy and force design matrices of one batch: d(E, F)/d(readout weights).

    Returns (energy rows [n_graphs, P], force rows [3 n_atoms, P] or None,
    predicted energies, predicted forces or None). With forces this costs
    one backward pass per readout weight. ``column_maps``: the layers'
    ``readout_column_maps`` (computed here when not given).
    """
    captured = {}
    hooks = [
        layer.register_forward_hook(
            lambda mod, args, out, key=key: captured.__setitem__(key, args[0])
        )
        for key, layer in layers.items()
    ]
    try:
        output = model(batch.to_dict(), training=False, compute_force=False)
    finally:
        for hook in hooks:
            hook.remove()
    positions = batch["positions"]
    energy = output["energy"]
    if column_maps is None:
        column_maps = readout_column_maps(layers, energy.dtype)
    scale = torch.atleast_1d(model.scale_shift.scale)[0]
    per_atom = torch.cat([captured[key] @ column_maps[key] for key in layers], dim=1)
    energy_rows = scatter_sum(scale * per_atom, batch.batch, dim=0, dim_size=len(energy))
    if not with_forces:
        return energy_rows.detach(), None, energy.detach(), None
    grads = [
        torch.autograd.grad(column.sum(), positions, retain_graph=True)[0]
        for column in energy_rows.unbind(dim=1)
    ]
    forces = -torch.autograd.grad(energy.sum(), positions)[0]
    force_rows = -torch.stack([g.reshape(-1) for g in grads], dim=1)
    return energy_rows.detach(), force_rows.detach(), energy.detach(), forces.detach()


@dataclass(frozen=True)
class ReadoutDesign:
    """What the closed-form readout fit needs of each structure, computed once for many fits.

    For structure i with n_i atoms: ``energy_rows[i]`` is dE_i/d(readout
    weights, then E0 per model element) in eV per unit parameter,
    ``force_rows[i]`` (3n_i x weights) is dF_i/d(readout weights) in eV/Å,
    ``energies[i]`` (eV) and ``forces[i]`` (n_i x 3, eV/Å) the frozen
    model's predictions. The model is linear in these parameters, so a fit's
    predictions are these plus rows · Δ, exactly. ``force_rows`` is None when
    computed without forces.
    """

    energy_rows: np.ndarray
    force_rows: list[np.ndarray] | None
    energies: np.ndarray
    forces: list[np.ndarray] | None
    n_weights: int

    def predict(self, delta: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Energies (eV) and forces (eV/Å) after adding ``delta`` to the parameters."""
        delta = _padded(delta, self.energy_rows.shape[1])
        weights = delta[: self.n_weights]
        forces = [
            f + (rows @ weights).reshape(-1, 3) for f, rows in zip(self.forces, self.force_rows)
        ]
        return self.energies + self.energy_rows @ delta, forces

    def take(self, index: Sequence[int]) -> ReadoutDesign:
        """The design of the structures at ``index`` (repeats allowed: a bootstrap resample)."""
        index = list(index)
        return ReadoutDesign(
            energy_rows=self.energy_rows[index],
            force_rows=None if self.force_rows is None else [self.force_rows[i] for i in index],
            energies=self.energies[index],
            forces=None if self.forces is None else [self.forces[i] for i in index],
            n_weights=self.n_weights,
        )


def readout_design(
    model, frames: Sequence[Atoms], *, with_forces: bool = True, batch_size: int = 16
) -> ReadoutDesign:
    """``ReadoutDesign`` of ``frames`` for a frozen MACE ``model`` (the closed form's columns).

    With forces this costs one backward pass per readout weight and batch;
    on a CPU the batches keep to ``graphs.cpu_edge_budget`` (the autograd
    graph of a batch is kept for all those passes, so this also bounds memory).
    """
    layers = readout_linears(model)
    device = next(model.parameters()).device
    maps = readout_column_maps(layers, next(model.parameters()).dtype)
    maps = {key: m.to(device) for key, m in maps.items()}
    max_edges = cpu_edge_budget(model) if device.type == "cpu" else None
    parts = {"energy_rows": [], "energies": [], "force_rows": [], "forces": []}
    for batch in graph_loader(frames, model, batch_size=batch_size, max_edges=max_edges):
        rows = readout_design_rows(
            model, batch.to(device), layers, with_forces=with_forces, column_maps=maps
        )
        energy_rows, force_rows, energies, forces = (
            None if t is None else t.double().cpu().numpy() for t in rows
        )
        parts["energy_rows"].append(energy_rows)
        parts["energies"].append(energies)
        if with_forces:
            ptr = batch.ptr.cpu().numpy()
            for low, high in zip(ptr[:-1], ptr[1:]):
                parts["force_rows"].append(force_rows[3 * low : 3 * high])
                parts["forces"].append(forces[low:high])
    composition = composition_matrix(frames, mace_models.model_elements(model))
    return ReadoutDesign(
        energy_rows=np.hstack([np.concatenate(parts["energy_rows"]), composition]),
        force_rows=parts["force_rows"] if with_forces else None,
        energies=np.concatenate(parts["energies"]),
        forces=parts["forces"] if with_forces else None,
        n_weights=sum(layer.weight.numel() for layer in layers.values()),
    )


class DesignCache:
    """Readout designs already computed, looked up by the model's state and the frames.

    Several closed-form fits from the same starting model on the same frames
    (E0s refit or kept, ridge values, energy-only or with forces) need the
    same design; with this only the first pays for it. The key is a digest
    of every parameter and buffer of the model (E0s included) and of the
    frames' numbers, positions and cells, so a model changed in any way gets
    its own design.
    """

    def __init__(self):
        self._designs: dict[tuple, ReadoutDesign] = {}

    def __len__(self) -> int:
        return len(self._designs)

    def design(
        self, model, frames: Sequence[Atoms], *, with_forces: bool, batch_size: int = 16
    ) -> ReadoutDesign:
        """``readout_design(model, frames, ...)``, computed on the first request only."""
        key = (model_digest(model), frames_digest(frames), with_forces)
        if key not in self._designs:
            self._designs[key] = readout_design(
                model, frames, with_forces=with_forces, batch_size=batch_size
            )
        return self._designs[key]


def model_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer of ``model`` (names, dtypes and values)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def frames_digest(frames: Sequence[Atoms]) -> str:
    """A digest of the structures (atomic numbers, positions, cell, periodicity), in order."""
    digest = hashlib.blake2b(digest_size=16)
    for atoms in frames:
        for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the solver


@dataclass(frozen=True)
class NormalEquations:
    """``A'WA Δ = A'Wr`` of the weighted loss, with ``r'Wr`` for the residual variance.

    Columns: the readout weights (``n_weights``), then one E0 per model
    element when E0s are fitted too.
    """

    normal: np.ndarray
    rhs: np.ndarray
    residual_ss: float
    n_weights: int
    n_labels: int


def normal_equations(
    design: ReadoutDesign,
    frames: Sequence[Atoms],
    *,
    weights: LossWeights,
    with_e0s: bool = True,
) -> NormalEquations:
    """The weighted least-squares problem of the loss on ``frames`` (their ``design``).

    Energies per atom with weight ``weights.energy / n_structures``, force
    components with ``weights.forces / n_components``: the gradient loss's terms.
    """
    n_columns = design.energy_rows.shape[1] if with_e0s else design.n_weights
    n_atoms = ds.n_atoms(frames)[:, None]
    rows = design.energy_rows[:, :n_columns] / n_atoms
    target = (ds.energies(frames) - design.energies) / n_atoms[:, 0]
    weight = weights.energy / len(frames)
    normal = weight * rows.T @ rows
    rhs = weight * rows.T @ target
    residual_ss = weight * float(target @ target)
    n_labels = len(frames)
    if weights.forces > 0:
        p = design.n_weights
        rows = np.vstack(design.force_rows)
        target = np.concatenate([(f - y).ravel() for f, y in zip(ds.forces(frames), design.forces)])
        weight = weights.forces / len(target)
        normal[:p, :p] += weight * rows.T @ rows
        rhs[:p] += weight * rows.T @ target
        residual_ss += weight * float(target @ target)
        n_labels += len(target)
    return NormalEquations(normal, rhs, residual_ss, design.n_weights, n_labels)


def solve_readouts(equations: NormalEquations, *, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Δ(readout weights[, E0s]) minimising the loss plus the ridge; and the precision matrix.

    The ridge ``ridge * mean(diag A'WA)`` acts on the weights only.
    """
    p = equations.n_weights
    penalty = np.zeros(len(equations.rhs))
    penalty[:p] = ridge * np.mean(np.diag(equations.normal)[:p])
    precision = equations.normal + np.diag(penalty)
    delta = np.linalg.lstsq(precision, equations.rhs, rcond=None)[0]
    return delta, precision


def posterior_of(
    equations: NormalEquations, delta: np.ndarray, precision: np.ndarray
) -> tuple[float, np.ndarray]:
    """Residual variance ``s2`` of the weighted labels and the weights' covariance ``s2 P^-1``."""
    # weighted residual after the fit: r'Wr - 2 d'A'Wr + d'A'WA d
    fitted_ss = equations.residual_ss - 2 * delta @ equations.rhs
    fitted_ss += delta @ equations.normal @ delta
    noise = max(fitted_ss, 0.0) / max(equations.n_labels - len(delta), 1)
    p = equations.n_weights
    return float(noise), (noise * np.linalg.pinv(precision))[:p, :p]


def apply_readout_delta(model: torch.nn.Module, delta: np.ndarray, present: Sequence[str]):
    """Add ``delta`` to the readout weights (and to the E0s of the ``present`` elements).

    Returns the new weights (concatenated) and the model's E0s of ``present`` (eV).
    """
    layers = readout_linears(model)
    offset = 0
    means = []
    with torch.no_grad():
        for layer in layers.values():
            size = layer.weight.numel()
            layer.weight += torch.as_tensor(
                delta[offset : offset + size], dtype=layer.weight.dtype, device=layer.weight.device
            )
            means.append(layer.weight.detach().cpu().double().numpy().copy())
            offset += size
    e0s = mace_models.model_e0s(model)
    elements = mace_models.model_elements(model)
    if len(delta) > offset:
        e0s = {s: e0s[s] + float(d) for s, d in zip(elements, delta[offset:]) if s in present}
        mace_models.set_model_e0s(model, e0s)
    return np.concatenate(means), e0s


def fit_readouts_closed_form(
    model: torch.nn.Module,
    frames: Sequence[Atoms],
    *,
    weights: LossWeights = LossWeights(),
    ridge: float = 1e-6,
    refit_e0s: bool = True,
    batch_size: int = 8,
    design_cache: DesignCache | None = None,
) -> tuple[ReadoutPosterior, dict[str, float]]:
    """Fit the readouts' last linear layers (and E0 shifts) by one ridge least-squares solve.

    Minimises the same loss as gradient training over those weights only,
    plus the ridge (the L2 pull toward the pre-trained weights). Updates
    ``model`` in place and returns the posterior and the E0s (eV). With a
    ``design_cache`` a design computed before for the same model and frames
    is reused.
    """
    if refit_e0s:
        warn_if_compositions_collinear(frames)
    with_forces = weights.forces > 0
    if design_cache is None:  # no digest of the model's weights for a one-off fit
        design = readout_design(model, frames, with_forces=with_forces, batch_size=batch_size)
    else:
        design = design_cache.design(model, frames, with_forces=with_forces, batch_size=batch_size)
    equations = normal_equations(design, frames, weights=weights, with_e0s=refit_e0s)
    delta, precision = solve_readouts(equations, ridge=ridge)
    noise, covariance = posterior_of(equations, delta, precision)
    mean, e0s = apply_readout_delta(model, delta, mace_models.frame_elements(frames))
    layers = readout_linears(model)
    posterior = ReadoutPosterior(
        parameter_names=tuple(f"{key}.weight" for key in layers),
        parameter_sizes=tuple(layer.weight.numel() for layer in layers.values()),
        mean=mean,
        covariance=covariance,
        noise_variance=noise,
        ridge=ridge,
        n_energy_labels=len(frames),
        n_force_labels=equations.n_labels - len(frames),
    )
    return posterior, e0s


def readout_energy_std(
    model: torch.nn.Module,
    posterior: ReadoutPosterior,
    frames: Sequence[Atoms],
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """Posterior standard deviation of each frame's energy (eV) from the readout fit.

    ``sqrt(a' C a)`` with ``a`` the frame's energy design row (derivative of
    its energy with respect to the fitted readout weights) and ``C`` the
    posterior covariance: large where the frozen features of a structure
    lie outside those the readouts were fitted on. Needs no force passes.
    """
    design = readout_design(model, frames, with_forces=False, batch_size=batch_size)
    rows = design.energy_rows[:, : design.n_weights]
    variances = np.einsum("ij,jk,ik->i", rows, posterior.covariance, rows)
    return np.sqrt(np.clip(variances, 0.0, None))


def _padded(delta: np.ndarray, size: int) -> np.ndarray:
    """``delta`` with zeros for the E0 columns a fit without E0s left out."""
    return delta if len(delta) == size else np.concatenate([delta, np.zeros(size - len(delta))])


# --------------------------------------------------------------------------- many fits, one pass


class SharedClosedForm:
    """Closed-form readout fits of many training sets, sharing one design pass.

    The design of every distinct structure of every training set (and of the
    test set, when given) is computed once, here; each ``fit`` is then one
    small linear solve with the same numbers as ``fit_readouts_closed_form``
    on that set alone (up to rounding). Learning curves fit nested subsets;
    committees fit bootstrap resamples. ``seconds_per_structure`` is the
    design pass's cost per structure, so a fit can be charged its share.

    Test predictions come from the test frames' own design (exact, as the
    model is linear in the fitted weights) when that is the cheaper way: it
    costs one backward pass per readout weight, a prediction one forward and
    one backward pass, so the design pays off beyond ``(weights + 1) / 2``
    fits (about 25 for course-mini, 72 for MACE-MP-0 small). With fewer
    training sets each fit's model predicts the test frames instead.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_sets: Sequence[Sequence[Atoms]],
        test_frames: Sequence[Atoms] | None = None,
        *,
        weights: LossWeights = LossWeights(),
        ridge: float = 1e-6,
        refit_e0s: bool = True,
        dtype: str = "float64",
        device: str = "cpu",
    ):
        frames = list({id(atoms): atoms for train in train_sets for atoms in train}.values())
        warn_if_compositions_collinear(frames)
        frozen = copy.deepcopy(model).to(mace_models.DTYPES[dtype]).to(torch.device(device))
        frozen.requires_grad_(False)
        self.model = frozen.eval()
        self.weights = weights
        self.ridge = ridge
        self.refit_e0s = refit_e0s
        began = time.perf_counter()
        self.design = readout_design(self.model, frames, with_forces=weights.forces > 0)
        self.seconds_per_structure = (time.perf_counter() - began) / len(frames)
        self.row = {id(atoms): i for i, atoms in enumerate(frames)}
        self.test_frames = None if test_frames is None else list(test_frames)
        by_design = len(train_sets) > (self.design.n_weights + 1) / 2
        self.test = None
        if self.test_frames is not None and by_design:
            self.test = readout_design(self.model, self.test_frames)

    def solve(self, train: Sequence[Atoms]) -> np.ndarray:
        """Δ(readout weights[, E0s]) fitted on ``train`` (any of the sets given, or a resample)."""
        design = self.design.take([self.row[id(atoms)] for atoms in train])
        equations = normal_equations(design, train, weights=self.weights, with_e0s=self.refit_e0s)
        return solve_readouts(equations, ridge=self.ridge)[0]

    def fitted_model(self, train: Sequence[Atoms]) -> torch.nn.Module:
        """A copy of the frozen model with the readouts (and E0s) fitted on ``train``."""
        model = copy.deepcopy(self.model)
        apply_readout_delta(model, self.solve(train), mace_models.frame_elements(train))
        return model

    def test_predictions(self, delta: np.ndarray):
        """``Predictions`` on the test frames for a fitted ``delta``, from the design alone."""
        from course_lib.zero_shot import Predictions, predict

        if self.test_frames is None:
            raise ValueError("no test frames were given to SharedClosedForm")
        if self.test is None:
            model = copy.deepcopy(self.model)
            apply_readout_delta(model, delta, mace_models.model_elements(model))
            found = predict(model, self.test_frames, compute_stress=False)
            return Predictions(model="closed form", energies=found.energies, forces=found.forces)
        energies, forces = self.test.predict(delta)
        return Predictions(model="closed form", energies=energies, forces=forces)
