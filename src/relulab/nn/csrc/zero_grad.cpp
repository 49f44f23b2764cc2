// ReLU and Leaky ReLU with f'(0) := zero_grad, as PyTorch operators with their own backward.
//
// relulab::relu_zero_grad(x, zero_grad) is torch.relu(x) forward and
// relulab::leaky_relu_zero_grad(x, negative_slope, zero_grad) is F.leaky_relu(x, negative_slope).
// Their backward is the definition in one pass over the upstream gradient and the saved input:
//
//     ReLU:        grad_input = x <= 0 ? (x == 0 ? grad * zero_grad : 0) : grad
//     Leaky ReLU:  grad_input = x > 0 ? grad : (x == 0 ? grad * zero_grad : grad * slope)
//
// which is PyTorch's own backward (threshold_backward at 0, leaky_relu_backward; NaN inputs
// included) except at x == 0 (+0.0 and -0.0), where it is zero_grad * grad computed as PyTorch
// computes ``grad * zero_grad``: in the tensor's type, the number rounded to it. The loop covers
// contiguous float32 and float64 tensors on the CPU; every other case (other dtypes, strided
// tensors, a backward that is itself differentiated) uses the same formula written with
// PyTorch's operators.
//
// Built on first use by relulab.native (torch.utils.cpp_extension), with -fno-trapping-math so
// that the compiler turns the selects below into vector blends instead of branches.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace relulab {

constexpr int64_t kGrainSize = 32768;  // PyTorch's own at::internal::GRAIN_SIZE

// On x86-64 the loop is compiled for AVX-512, AVX2 and the baseline, and the loader picks the
// widest the CPU has (as PyTorch's own kernels do), so one build serves every x86-64 CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RELULAB_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RELULAB_VECTOR_CLONES
#endif

// One pass of the backward over [begin, end). kSlope: Leaky ReLU (slope for x < 0), else ReLU.
template <typename T, bool kSlope>
RELULAB_VECTOR_CLONES void backward_range(const T* __restrict__ grad, const T* __restrict__ x,
                                          T* __restrict__ out, T zero_grad, T slope,
                                          int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const T xi = x[i];
    const T gi = grad[i];
    const T at_zero = gi * zero_grad;
    if constexpr (kSlope) {
      const T at_or_below_zero = xi == T(0) ? at_zero : gi * slope;
      out[i] = xi > T(0) ? gi : at_or_below_zero;
    } else {
      const T at_or_below_zero = xi == T(0) ? at_zero : T(0);
      out[i] = xi <= T(0) ? at_or_below_zero : gi;
    }
  }
}

template <typename T, bool kSlope>
at::Tensor backward_loop(const at::Tensor& grad, const at::Tensor& x, double zero_grad,
                         double slope) {
  at::Tensor out = at::empty_like(x);
  const T* grad_data = grad.const_data_ptr<T>();
  const T* x_data = x.const_data_ptr<T>();
  T* out_data = out.mutable_data_ptr<T>();
  const T at_zero = static_cast<T>(zero_grad);
  const T below_zero = static_cast<T>(slope);
  at::parallel_for(0, x.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
    backward_range<T, kSlope>(grad_data, x_data, out_data, at_zero, below_zero, begin, end);
  });
  return out;
}

bool loop_applies(const at::Tensor& grad, const at::Tensor& x) {
  const auto type = x.scalar_type();
  return x.device().is_cpu() && grad.device().is_cpu() && grad.scalar_type() == type &&
         (type == at::kFloat || type == at::kDouble) && grad.sizes() == x.sizes() &&
         grad.is_contiguous() && x.is_contiguous();
}

// The definitions with PyTorch's operators: any dtype, device or layout, and differentiable.
at::Tensor relu_composite(const at::Tensor& grad, const at::Tensor& x, double zero_grad) {
  return at::where(x == 0, grad * zero_grad, at::threshold_backward(grad, x, 0));
}

at::Tensor leaky_relu_composite(const at::Tensor& grad, const at::Tensor& x, double slope,
                                double zero_grad) {
  return at::where(x == 0, grad * zero_grad, at::leaky_relu_backward(grad, x, slope, false));
}

at::Tensor relu_zero_grad_backward(const at::Tensor& grad, const at::Tensor& x,
                                   double zero_grad) {
  if (!loop_applies(grad, x)) return relu_composite(grad, x, zero_grad);
  return x.scalar_type() == at::kFloat ? backward_loop<float, false>(grad, x, zero_grad, 0)
                                       : backward_loop<double, false>(grad, x, zero_grad, 0);
}

at::Tensor leaky_relu_zero_grad_backward(const at::Tensor& grad, const at::Tensor& x,
                                         double slope, double zero_grad) {
  if (!loop_applies(grad, x)) return leaky_relu_composite(grad, x, slope, zero_grad);
  return x.scalar_type() == at::kFloat ? backward_loop<float, true>(grad, x, zero_grad, slope)
                                       : backward_loop<double, true>(grad, x, zero_grad, slope);
}

// With create_graph the backward is itself recorded, so it must be made of operators.
bool backward_is_recorded() { return at::GradMode::is_enabled(); }

struct ReluZeroGrad : public torch::autograd::Function<ReluZeroGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            double zero_grad) {
    ctx->save_for_backward({x});
    ctx->saved_data["zero_grad"] = zero_grad;
    return at::relu(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const double zero_grad = ctx->saved_data["zero_grad"].toDouble();
    return {backward_is_recorded() ? relu_composite(grads[0], x, zero_grad)
                                   : relu_zero_grad_backward(grads[0], x, zero_grad),
            at::Tensor()};
  }
};

struct LeakyReluZeroGrad : public torch::autograd::Function<LeakyReluZeroGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            double slope, double zero_grad) {
    ctx->save_for_backward({x});
    ctx->saved_data["slope"] = slope;
    ctx->saved_data["zero_grad"] = zero_grad;
    return at::leaky_relu(x, slope);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const double slope = ctx->saved_data["slope"].toDouble();
    const double zero_grad = ctx->saved_data["zero_grad"].toDouble();
    return {backward_is_recorded()
                ? leaky_relu_composite(grads[0], x, slope, zero_grad)
                : leaky_relu_zero_grad_backward(grads[0], x, slope, zero_grad),
            at::Tensor(), at::Tensor()};
  }
};

at::Tensor relu_zero_grad_autograd(const at::Tensor& x, double zero_grad) {
  return ReluZeroGrad::apply(x, zero_grad);
}

at::Tensor relu_zero_grad_forward(const at::Tensor& x, double /*zero_grad*/) {
  return at::relu(x);
}

at::Tensor leaky_relu_zero_grad_autograd(const at::Tensor& x, double slope, double zero_grad) {
  return LeakyReluZeroGrad::apply(x, slope, zero_grad);
}

at::Tensor leaky_relu_zero_grad_forward(const at::Tensor& x, double slope,
                                        double /*zero_grad*/) {
  return at::leaky_relu(x, slope);
}

}  // namespace relulab

TORCH_LIBRARY(relulab, m) {
  m.def("relu_zero_grad(Tensor x, float zero_grad) -> Tensor");
  m.def("relu_zero_grad_backward(Tensor grad, Tensor x, float zero_grad) -> Tensor");
  m.def("leaky_relu_zero_grad(Tensor x, float negative_slope, float zero_grad) -> Tensor");
  m.def(
      "leaky_relu_zero_grad_backward(Tensor grad, Tensor x, float negative_slope, "
      "float zero_grad) -> Tensor");
}

TORCH_LIBRARY_IMPL(relulab, CompositeExplicitAutograd, m) {
  m.impl("relu_zero_grad", relulab::relu_zero_grad_forward);
  m.impl("relu_zero_grad_backward", relulab::relu_zero_grad_backward);
  m.impl("leaky_relu_zero_grad", relulab::leaky_relu_zero_grad_forward);
  m.impl("leaky_relu_zero_grad_backward", relulab::leaky_relu_zero_grad_backward);
}

TORCH_LIBRARY_IMPL(relulab, Autograd, m) {
  m.impl("relu_zero_grad", relulab::relu_zero_grad_autograd);
  m.impl("leaky_relu_zero_grad", relulab::leaky_relu_zero_grad_autograd);
}
