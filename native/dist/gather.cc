#include "dist/gather.h"

namespace ctclip::dist {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class GatherFunction : public torch::autograd::Function<GatherFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& local, int64_t groupAddress) {
    auto* group = reinterpret_cast<Group*>(groupAddress);
    ctx->saved_data["group"] = groupAddress;
    ctx->saved_data["rows"] = local.size(0);
    return group->AllGather(local.detach(), "all-gather of the latents");
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* group = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    std::vector<at::Tensor> g{grads[0].contiguous().clone()};
    group->AllReduceSum(g, "all-reduce of the latent gradients");
    return {g[0].narrow(0, group->rank() * rows, rows), at::Tensor()};
  }
};

}  // namespace

at::Tensor GatherWithGrad(const at::Tensor& local, Group& group) {
  if (group.size() == 1) return local;
  return GatherFunction::apply(local, reinterpret_cast<int64_t>(&group));
}

}  // namespace ctclip::dist
