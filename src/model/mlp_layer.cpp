#include "kernels/activations.h"
#include "kernels/linear.h"
#include "model/layers.h"

namespace ringscan {

void mlp_mixer(const ModelConfig& c, const MlpWeights& w, const float* x, int64_t n, Workspace& ws, float* out) {
  namespace k = kernels::cpu;
  const int64_t D = c.hidden_size, I = c.intermediate_size;
  float* up = Workspace::sized(ws.up, n * I);
  k::linear(x, D, n, w.up, up, I);
  if (c.mlp == MlpKind::Relu2) {
    k::relu_squared(up, n * I);
  } else {
    float* gate = Workspace::sized(ws.gate, n * I);
    k::linear(x, D, n, w.gate, gate, I);
    k::silu_mul(gate, up, n * I, up);
  }
  k::linear(up, I, n, w.down, out, D);
}

}  // namespace ringscan
