// Activation checkpointing: run a block without keeping its activations and recompute it during backward.
//
// Implemented as a custom autograd function (like torch.utils.checkpoint with use_reentrant=True): the forward
// runs the block under no-grad; the backward detaches the saved inputs, recomputes the block with grad enabled and
// backpropagates through it (a re-entrant backward), which accumulates the block's parameter gradients and yields
// the input gradients. The recomputation runs the same kernels on the same inputs, so gradients are identical to the
// plain path. The block must be deterministic and must not mutate state (true for the transformer layers: no
// dropout, no buffers updated).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace ctclip::model {

using CheckpointedBlock = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

// Returns block(inputs) with checkpointed backward. All inputs must be defined tensors.
at::Tensor Checkpoint(CheckpointedBlock block, const std::vector<at::Tensor>& inputs);

}  // namespace ctclip::model
