import { expect } from 'chai';
import { categorize, gemmGflopsPerCore, parsePerfReport, type ProfileSide } from '../../bench/profile';

// Lines as `perf report --stdio --no-children --sort dso,sym -g none` prints them (trimmed symbols).
const REPORT = `# To display the perf.data header info, please use --header/--header-only options.
#
# Total Lost Samples: 0
#
# Samples: 9K of event 'cpu-clock:ppp'
#
# Overhead  Shared Object         Symbol
# ........  ....................  ......
#
    43.85%  libtorch_cpu.so       [.] mkl_blas_def_sgemm_kernel_0_zen
     6.73%  [kernel.kallsyms]     [k] pvm_irq_enable
     4.70%  libtorch_cpu.so       [.] mkl_blas_def_sgemm_mscale
     2.23%  ctclip.node           [.] at::internal::invoke_parallel<at::parallel_for<ctclip::model::(anonymous namespace)::FusedGradWeight<float>(float const*)>
     1.84%  libtorch_cpu.so       [.] c10::function_ref<void (char**, long const*, long, long)>::callback_fn<at::native::AVX2::VectorizedLoop2d<at::native::AVX2::direct_copy_kernel(at::TensorIteratorBase&)>
     0.98%  ctclip.node           [.] ctclip::model::(anonymous namespace)::GegluBackwardAvx2
     0.88%  libtorch_cpu.so       [.] c10::function_ref<void (char**, long const*, long, long)>::callback_fn<at::native::AVX2::VectorizedLoop2d<at::native::(anonymous namespace)::div_true_kernel(at::TensorIteratorBase&)>
     0.83%  ctclip.node           [.] ctclip::train::AdamW::Step
     0.79%  libgomp.so.1          [.] 0x000000000001de62
     0.50%  ctclip.node           [.] _ZN2at8internal15invoke_parallelIZNS_12parallel_forIZN6ctclip5model12_GLOBAL__N_110ForEachRowIZNS5_12FusedForwardIfEEvPKT_SA_._omp_fn.0
     0.90%  libtorch_cpu.so       [.] dnnl::impl::cpu::x64::jit_avx512_common_convolution_bwd_data_t<(dnnl_data_type_t)3>::execute_backward_data_3d(dnnl::impl::exec_ctx_t const&) const
     0.14%  libtorch_cpu.so       [.] at::native::AVX512::vectorized_gelu<float, true>
     0.66%  libtorch_cpu.so       [.] at::native::(anonymous namespace)::LayerNormBackwardKernelImplInternal<float, float>(at::Tensor const&)
     0.60%  libc.so.6             [.] _int_malloc
     0.26%  libtorch_cpu.so       [.] c10::impl::OperatorEntry::lookup
     0.20%  libpython3.11.so.1.0  [.] _PyEval_EvalFrameDefault
     0.10%  libopenblas.so.0      [.] sgemm_kernel_HASWELL
     0.05%  libopenblas.so.0      [.] blas_thread_server
     0.09%  libc.so.6             [.] __sched_yield
     0.02%  libpthreadpool.so.0   [.] 0x000000000000d7ef
     0.04%  node                  [.] v8::internal::Heap::Scavenge
`;

describe('bench/profile: perf report categories', () => {
  const symbols = parsePerfReport(REPORT);
  const shareOf = (name: string) => categorize(symbols).find((c) => c.name === name)!.share;

  it('reads every sample line and nothing of the header', () => {
    expect(symbols).to.have.length(21);
    expect(symbols[0]).to.deep.equal({
      share: 0.4385,
      dso: 'libtorch_cpu.so',
      symbol: 'mkl_blas_def_sgemm_kernel_0_zen',
    });
    expect(symbols[1].dso).to.equal('[kernel.kallsyms]');
  });

  it('puts each symbol in the first category that claims it', () => {
    expect(shareOf('GEMM (BLAS)')).to.be.closeTo(0.4385 + 0.047 + 0.001, 1e-12);
    expect(shareOf('kernel: page faults, scheduling, syscalls')).to.be.closeTo(0.0673, 1e-12);
    expect(shareOf('thread pools (OpenMP / BLAS workers)')).to.be.closeTo(0.0079 + 0.0005 + 0.0009 + 0.0002, 1e-12);
    expect(shareOf('ours: PEG conv')).to.be.closeTo(0.0223 + 0.005, 1e-12); // an OpenMP-outlined body is ours
    expect(shareOf('ATen: convolution (oneDNN)')).to.be.closeTo(0.009, 1e-12);
    expect(shareOf('ours: GEGLU')).to.be.closeTo(0.0098, 1e-12);
    expect(shareOf('ours: AdamW')).to.be.closeTo(0.0083, 1e-12);
    expect(shareOf('copies and fills')).to.be.closeTo(0.0184, 1e-12);
    expect(shareOf('ATen: layer norm')).to.be.closeTo(0.0066, 1e-12);
    expect(shareOf('allocator (malloc / free)')).to.be.closeTo(0.006, 1e-12);
    expect(shareOf('ATen: element-wise and reductions')).to.be.closeTo(0.0088 + 0.0014, 1e-12);
    expect(shareOf('ATen: dispatcher, autograd, tensor bookkeeping')).to.be.closeTo(0.0026, 1e-12);
    expect(shareOf('Python interpreter')).to.be.closeTo(0.002, 1e-12);
    expect(shareOf('Node / V8 / loader')).to.be.closeTo(0.0004, 1e-12);
    const total = categorize(symbols).reduce((a, c) => a + c.share, 0);
    expect(total).to.be.closeTo(
      symbols.reduce((a, s) => a + s.share, 0),
      1e-12,
    );
  });

  it('GEMM GFLOP/s per core is the matmul FLOPs over the CPU time in GEMM', () => {
    const side: ProfileSide = {
      label: 'x',
      stepMs: 100,
      cpuMsPerStep: 200,
      samples: 1000,
      categories: categorize(symbols),
    };
    // 0.4865 of 200 CPU ms = 97.3 ms for 6.42 GFLOP.
    expect(gemmGflopsPerCore(side, 6.42)).to.be.closeTo(6.42 / 0.0973, 1e-9);
  });
});
