"""The public datasets behind foundation MLIPs, and the "query, filter, fine-tune" workflow.

:data:`DATA_SOURCES` catalogues the datasets of the chapter's section "The
data sources": size, level of theory, licence, where each lives and how to
load it in Python. Sizes and licences are those stated on each project's
page (``url``) as of 2025; licences can change, so check the page before
redistributing data.

:func:`fine_tuning_set` runs the chapter's workflow end to end on the bundled
pre-training corpus: query what the corpus holds, filter it to the chemistry
of interest, and keep the result as a fine-tuning set (extxyz with
provenance, ready for ``mace_run_train``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms
from ase.data import atomic_numbers

from course_lib.data import (
    DatasetError,
    dataset_paths,
    filter_elements,
    read_dataset,
    read_provenance,
    subset,
    write_dataset,
)


@dataclass(frozen=True)
class DataSource:
    """One public dataset: what it holds and how to get at it."""

    name: str
    size: str  # as the project states it
    n_configurations: float  # order of magnitude, for sorting and plotting
    level_of_theory: str
    domain: str
    licence: str
    url: str
    load: str  # a minimal Python recipe

    def as_row(self) -> dict:
        return {
            "name": self.name,
            "size": self.size,
            "level of theory": self.level_of_theory,
            "domain": self.domain,
            "licence": self.licence,
            "url": self.url,
        }


DATA_SOURCES: tuple[DataSource, ...] = (
    DataSource(
        name="MPtrj",
        size="1,580,395 frames of 145,923 materials (relaxation trajectories)",
        n_configurations=1.58e6,
        level_of_theory="PBE / PBE+U (VASP, Materials Project settings)",
        domain="inorganic crystals, 89 elements, mostly near equilibrium",
        licence="CC BY 4.0 (Materials Project data)",
        url="https://figshare.com/articles/dataset/23713842",
        load=(
            "from course_lib.mptrj import sample_mptrj\n"
            "sample = sample_mptrj(10_000, seed=0)  # range-reads figshare file 49034296\n"
            "frames = sample.frames"
        ),
    ),
    DataSource(
        name="OMat24",
        size="about 1.1e8 single points (rattled, strained and AIMD structures)",
        n_configurations=1.1e8,
        level_of_theory="PBE / PBE+U (VASP, MP-compatible settings)",
        domain="inorganic crystals, deliberately off equilibrium",
        licence="CC BY 4.0",
        url="https://huggingface.co/datasets/facebook/OMAT24",
        load=(
            "from fairchem.core.datasets import AseDBDataset  # pip install fairchem-core\n"
            'dataset = AseDBDataset({"src": "omat24/train/rattled-1000"})\n'
            "atoms = dataset.get_atoms(0)"
        ),
    ),
    DataSource(
        name="Alexandria",
        size="about 5e6 relaxed structures (PBE 3D, plus PBEsol and SCAN subsets)",
        n_configurations=5e6,
        level_of_theory="PBE (VASP); PBEsol and SCAN subsets",
        domain="inorganic crystals from prototype substitution",
        licence="CC BY 4.0",
        url="https://alexandria.icams.rub.de/",
        load=(
            "import bz2, json\n"
            "from pymatgen.entries.computed_entries import ComputedStructureEntry\n"
            'data = json.load(bz2.open("alexandria_000.json.bz2"))\n'
            'entries = [ComputedStructureEntry.from_dict(e) for e in data["entries"]]'
        ),
    ),
    DataSource(
        name="OC20",
        size="about 1.3e6 relaxations, 2.6e8 single points",
        n_configurations=2.6e8,
        level_of_theory="RPBE (VASP)",
        domain="adsorbates on metal and intermetallic surfaces (catalysis)",
        licence="CC BY 4.0",
        url="https://fair-chem.github.io/",
        load=(
            "from fairchem.core.datasets import AseDBDataset\n"
            'dataset = AseDBDataset({"src": "oc20/s2ef/train_2M"})\n'
            "atoms = dataset.get_atoms(0)"
        ),
    ),
    DataSource(
        name="OC22",
        size="about 6.2e4 relaxations, 9.8e6 single points",
        n_configurations=9.8e6,
        level_of_theory="PBE+U (VASP)",
        domain="adsorbates on oxide surfaces (catalysis)",
        licence="CC BY 4.0",
        url="https://fair-chem.github.io/",
        load=(
            "from fairchem.core.datasets import AseDBDataset\n"
            'dataset = AseDBDataset({"src": "oc22/s2ef/train"})\n'
            "atoms = dataset.get_atoms(0)"
        ),
    ),
    DataSource(
        name="SPICE",
        size="about 2e6 conformations (v2; v1: 1.1e6), 17 elements",
        n_configurations=2e6,
        level_of_theory="ωB97M-D3(BJ)/def2-TZVPPD (Psi4)",
        domain="drug-like molecules, dimers, peptides, solvated amino acids",
        licence="CC0 (public domain)",
        url="https://github.com/openmm/spice-dataset",
        load=(
            "import h5py  # SPICE-2.0.1.hdf5 from Zenodo\n"
            'group = next(iter(h5py.File("SPICE-2.0.1.hdf5").values()))\n'
            'positions_bohr = group["conformations"][:]; energy_hartree = group["dft_total_energy"][:]'
        ),
    ),
    DataSource(
        name="ANI-1x",
        size="about 5e6 conformations of small organic molecules (C, H, N, O)",
        n_configurations=5e6,
        level_of_theory="ωB97x/6-31G(d); CCSD(T)*/CBS for a 5e5 subset (ANI-1ccx)",
        domain="small organic molecules, active-learning sampled",
        licence="CC BY 4.0",
        url="https://doi.org/10.6084/m9.figshare.c.4712477",
        load=(
            "import h5py\n"
            'for formula, group in h5py.File("ani1x-release.h5").items():\n'
            '    xyz_A = group["coordinates"][:]; energy_hartree = group["wb97x_dz.energy"][:]'
        ),
    ),
    DataSource(
        name="QMugs",
        size="about 2e6 conformers of 665,000 drug-like molecules (ChEMBL)",
        n_configurations=2e6,
        level_of_theory="GFN2-xTB and ωB97X-D/def2-SVP",
        domain="drug-like molecules",
        licence="CC BY 4.0",
        url="https://doi.org/10.3929/ethz-b-000482129",
        load=(
            "from rdkit import Chem  # one SDF per conformer, labels as SDF properties\n"
            'molecule = next(Chem.SDMolSupplier("CHEMBL1/conf_00.sdf", removeHs=False))'
        ),
    ),
)


@dataclass(frozen=True)
class DataCatalogue:
    """A table of :class:`DataSource` entries (``str()`` prints it, ``[name]`` looks one up)."""

    sources: tuple[DataSource, ...] = DATA_SOURCES

    def __getitem__(self, name: str) -> DataSource:
        for source in self.sources:
            if source.name.lower() == name.lower():
                return source
        raise KeyError(f"no data source {name!r}; known: {', '.join(s.name for s in self.sources)}")

    def to_rows(self) -> list[dict]:
        return [source.as_row() for source in self.sources]

    def __str__(self) -> str:
        columns = ("name", "size", "level of theory", "licence")
        widths = [max(len(c), *(len(row[c]) for row in self.to_rows())) for c in columns]
        rows = [dict(zip(columns, columns, strict=True)), *self.to_rows()]
        return "\n".join(
            "  ".join(row[c].ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
            for row in rows
        )


def catalogue() -> DataCatalogue:
    """The chapter's datasets as a table."""
    return DataCatalogue()


# -- query, filter to your chemistry, fine-tune -----------------------------------------


@dataclass(frozen=True)
class FineTuningSet:
    """The result of :func:`fine_tuning_set`: what was asked, found and kept."""

    corpus: str
    elements: tuple[str, ...]
    n_corpus: int  # frames in the corpus
    n_touching: int  # frames containing at least one of the elements (the query)
    n_only: int  # frames made only of the elements (the filter)
    frames: tuple[Atoms, ...]  # the fine-tuning set (seeded subset of the filtered frames)
    path: Path | None  # where it was written, if asked

    def to_rows(self) -> list[dict]:
        return [
            {"step": "corpus", "frames": self.n_corpus, "what": self.corpus},
            {
                "step": "query",
                "frames": self.n_touching,
                "what": f"contain any of {'-'.join(self.elements)}",
            },
            {"step": "filter", "frames": self.n_only, "what": f"only {'-'.join(self.elements)}"},
            {"step": "fine-tuning set", "frames": len(self.frames), "what": str(self.path or "")},
        ]

    def __str__(self) -> str:
        return "\n".join(
            f"{row['step']:<16} {row['frames']:>7}  {row['what']}" for row in self.to_rows()
        )


def element_frame_counts(frames: Iterable[Atoms]) -> dict[str, int]:
    """How many frames contain each element (the "query" of a corpus), by atomic number."""
    counts = Counter(symbol for atoms in frames for symbol in set(atoms.get_chemical_symbols()))
    return dict(sorted(counts.items(), key=lambda item: atomic_numbers[item[0]]))


def fine_tuning_set(
    elements: Sequence[str],
    *,
    corpus: str | os.PathLike = "mini-mptrj",
    n_max: int | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
) -> FineTuningSet:
    """Query a corpus, filter it to ``elements``, keep at most ``n_max`` frames.

    ``corpus`` is a bundled dataset name or an extxyz path. The filter keeps
    frames made only of ``elements`` (e.g. ``("Li", "O")`` keeps Li, Li2O,
    Li2O2, O2, not LiCoO2). With ``out`` the set is written as extxyz with a
    provenance sidecar naming the corpus, elements and seed.
    """
    wanted = tuple(sorted(set(elements), key=atomic_numbers.__getitem__))
    frames = read_dataset(corpus)
    touching = [atoms for atoms in frames if set(atoms.get_chemical_symbols()) & set(wanted)]
    chosen = filter_elements(frames, wanted)
    if not chosen:
        held = ", ".join(element_frame_counts(frames))
        raise DatasetError(
            f"no frame of {corpus} is made only of {'-'.join(wanted)} "
            f"({len(touching)} frames contain some of them); the corpus holds {held}"
        )
    n_only = len(chosen)
    if n_max is not None and n_max < n_only:
        chosen = subset(chosen, n_max, seed=seed)
    path = None
    if out is not None:
        source = read_provenance(dataset_paths(corpus)[0])  # parts of a corpus share one setup
        provenance = {
            "description": f"{'-'.join(wanted)} frames filtered from {corpus}",
            "method": source.get("method", f"as in {corpus}"),
            "settings": {
                "corpus": str(corpus),
                "elements": list(wanted),
                "n_max": n_max,
                "seed": seed,
            },
            "licence": source.get("licence", f"as in {corpus}"),
            "how_made": "course_lib.datasources.fine_tuning_set",
        }
        path = write_dataset(out, chosen, provenance)
    return FineTuningSet(
        corpus=str(corpus),
        elements=wanted,
        n_corpus=len(frames),
        n_touching=len(touching),
        n_only=n_only,
        frames=tuple(chosen),
        path=path,
    )
