"""Parallel degrees, validated up front, and the one DeviceMesh every other piece slices."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

MESH_DIMS = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
"""Mesh dimension names, outermost first (pipeline stages across nodes, TP innermost)."""
FLAT_DIMS = {
    "dp": ("dp_replicate", "dp_shard"),
    "dp_shard_cp": ("dp_shard", "cp"),
    "dp_cp": ("dp_replicate", "dp_shard", "cp"),
}
"""Flattened views: `dp` reads distinct data, `dp_shard_cp` is what FSDP shards over (the context
ranks hold the same parameters, so they shard them too, as torchtitan does), `dp_cp` holds the
distinct tokens of a step (losses and token counts are summed over it)."""


@dataclass
class ParallelDims:
    """How `world_size` ranks split into pipeline x replicate x shard x tensor groups."""

    dp_replicate: int = 1
    """Data-parallel replicas that hold full copies of the (FSDP-sharded) state (HSDP outer dim)."""
    dp_shard: int = -1
    """FSDP shard degree; -1 = whatever is left of world_size after the other degrees."""
    tp: int = 1
    """Tensor (and sequence) parallel degree."""
    pp: int = 1
    """Pipeline-parallel ranks (each holds one or more stages, see parallel.pipeline)."""
    world_size: int = 1
    """Number of ranks in the job."""
    cp: int = 1
    """Context-parallel degree: each sequence is split over this many ranks (parallel.context_parallel)."""
    _mesh: DeviceMesh | None = field(default=None, init=False, repr=False)
    _views: dict[str, DeviceMesh] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        named = {"dp_replicate": self.dp_replicate, "tp": self.tp, "pp": self.pp, "cp": self.cp}
        for name, value in named.items():
            if value < 1:
                raise ValueError(f"parallel.{name}={value} must be >= 1")
        others = self.dp_replicate * self.tp * self.pp * self.cp
        if self.dp_shard == -1:
            if self.world_size % others:
                raise ValueError(
                    f"world_size={self.world_size} is not divisible by dp_replicate*cp*tp*pp="
                    f"{self.dp_replicate}*{self.cp}*{self.tp}*{self.pp}={others}, so parallel.dp_shard=-1 "
                    "cannot be inferred"
                )
            self.dp_shard = self.world_size // others
        if self.dp_shard < 1:
            raise ValueError(f"parallel.dp_shard={self.dp_shard} must be >= 1 or -1 (auto)")
        product = others * self.dp_shard
        if product != self.world_size:
            raise ValueError(
                f"parallel degrees pp*dp_replicate*dp_shard*cp*tp = {self.pp}*{self.dp_replicate}*"
                f"{self.dp_shard}*{self.cp}*{self.tp} = {product} but world_size={self.world_size}"
            )

    @property
    def dp_size(self) -> int:
        """Number of distinct data-parallel batches per step."""
        return self.dp_replicate * self.dp_shard

    @property
    def fsdp_enabled(self) -> bool:
        """Whether parameters are sharded or replicated by FSDP (data or context parallelism)."""
        return self.dp_size * self.cp > 1

    @property
    def dp_enabled(self) -> bool:
        return self.dp_size > 1

    @property
    def cp_enabled(self) -> bool:
        return self.cp > 1

    @property
    def tp_enabled(self) -> bool:
        return self.tp > 1

    @property
    def pp_enabled(self) -> bool:
        return self.pp > 1

    def build_mesh(self, device_type: str) -> DeviceMesh:
        """Mesh over the enabled dims, plus flattened `dp` (data loading, loss) and `fsdp` views."""
        degrees = dict(
            zip(MESH_DIMS, (self.pp, self.dp_replicate, self.dp_shard, self.cp, self.tp), strict=True)
        )
        # With replicas the shard dim stays even at size 1: FSDP over (replicate, shard) is HSDP,
        # and with shard size 1 plain replication (all-reduced gradients), never a 1-D shard.
        names = tuple(
            n for n, d in degrees.items() if d > 1 or (n == "dp_shard" and self.dp_replicate > 1)
        ) or ("dp_shard",)
        mesh = init_device_mesh(device_type, tuple(degrees[n] for n in names), mesh_dim_names=names)
        for flat, dims in FLAT_DIMS.items():
            present = tuple(n for n in dims if n in names)
            if len(present) > 1:
                self._views[flat] = mesh[present]._flatten(flat)
            elif present:
                self._views[flat] = mesh[present[0]]
        self._mesh = mesh
        return mesh

    @property
    def mesh(self) -> DeviceMesh:
        if self._mesh is None:
            raise RuntimeError("call build_mesh() first")
        return self._mesh

    def local_rank(self, dim: str) -> int:
        """This rank's coordinate along mesh dim `dim` (0 when the dim is not split)."""
        if self._mesh is None or dim not in (self._mesh.mesh_dim_names or ()):
            return 0
        return self._mesh.get_local_rank(dim)

    def pp_group(self):
        """Process group of this rank's pipeline (None without pipeline parallelism)."""
        return self.mesh["pp"].get_group() if self.pp_enabled else None

    def _view(self, name: str) -> DeviceMesh:
        self.mesh  # noqa: B018 - raises before build_mesh()
        return self._views[name]

    def dp_mesh(self) -> DeviceMesh | None:
        """Mesh of the ranks that see different data (None when there is one data stream)."""
        return self._view("dp") if self.dp_enabled else None

    def cp_mesh(self) -> DeviceMesh | None:
        """Mesh of the ranks that split one sequence (None without context parallelism)."""
        return self.mesh["cp"] if self.cp_enabled else None

    def batch_mesh(self) -> DeviceMesh | None:
        """Mesh of the ranks that hold distinct tokens of a step: data x context parallel."""
        return self._view("dp_cp") if self.dp_size * self.cp > 1 else None

    def fsdp_mesh(self) -> DeviceMesh | None:
        """1-D shard mesh (dp_shard x cp), or 2-D (replicate, shard) for HSDP and pure replication."""
        if not self.fsdp_enabled:
            return None
        if self.dp_replicate > 1:
            return self.mesh["dp_replicate", "dp_shard_cp" if self.cp_enabled else "dp_shard"]
        return self._view("dp_shard_cp")
