#include "model/checkpointing.h"

#include <torch/csrc/autograd/custom_function.h>

#include "compat.h"

namespace ctclip::model {

namespace {

// Carries the block through the autograd context (saved_data holds IValues; a capsule holds any C++ object).
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(CheckpointedBlock b) : block(std::move(b)) {}
  CheckpointedBlock block;
};

const CheckpointedBlock& BlockOf(const c10::IValue& capsule) {
  return static_cast<const BlockHolder*>(capsule.toCapsule().get())->block;
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, at::TensorList inputs,
                                                c10::IValue capsule) {
    ctx->saved_data["block"] = capsule;
    ctx->save_for_backward(inputs.vec());
    // The recompute must run under the forward's autocast state (as torch.utils.checkpoint does): the backward runs
    // after the trainer's autocast scope has closed, and a float32 recompute of a bf16 forward would differentiate
    // another graph.
    for (const auto& [key, device] :
         {std::pair{"cpu", c10::DeviceType::CPU}, std::pair{"cuda", c10::DeviceType::CUDA}}) {
      ctx->saved_data[std::string("autocast_") + key] = compat::AutocastEnabled(device);
      ctx->saved_data[std::string("autocast_dtype_") + key] = compat::AutocastDtype(device);
    }
    // Function::apply already disables grad mode here, so the block records nothing.
    return {BlockOf(capsule)(inputs.vec())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOutputs) {
    const CheckpointedBlock& block = BlockOf(ctx->saved_data["block"]);
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    std::vector<at::Tensor> detached;
    detached.reserve(saved.size());
    for (const at::Tensor& t : saved) detached.push_back(t.detach().requires_grad_(t.requires_grad()));
    at::Tensor output;
    {
      torch::AutoGradMode enable(true);
      compat::AutocastGuard cpu(c10::DeviceType::CPU, ctx->saved_data["autocast_dtype_cpu"].toScalarType(),
                                ctx->saved_data["autocast_cpu"].toBool());
      compat::AutocastGuard cuda(c10::DeviceType::CUDA, ctx->saved_data["autocast_dtype_cuda"].toScalarType(),
                                 ctx->saved_data["autocast_cuda"].toBool());
      output = block(detached);
    }
    if (output.requires_grad() && gradOutputs[0].defined()) {
      torch::autograd::backward({output}, {gradOutputs[0]});
    }
    torch::autograd::variable_list grads;
    grads.reserve(detached.size() + 1);
    for (const at::Tensor& d : detached) grads.push_back(d.requires_grad() ? d.grad() : at::Tensor());
    grads.emplace_back();  // the capsule argument
    return grads;
  }
};

}  // namespace

at::Tensor Checkpoint(CheckpointedBlock block, const std::vector<at::Tensor>& inputs) {
  c10::IValue capsule = c10::IValue::make_capsule(c10::make_intrusive<BlockHolder>(std::move(block)));
  torch::autograd::variable_list out = CheckpointFunction::apply(at::TensorList(inputs), capsule);
  return out[0];
}

}  // namespace ctclip::model
