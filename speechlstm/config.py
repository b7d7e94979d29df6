"""Tunables, in one place, with units.  Logic lives elsewhere."""

# --- audio ------------------------------------------------------------------------------------
SAMPLE_RATE = 16000  # Hz, the rate every model sees
AUDIO_BLOCK_SECONDS = 30.0  # s, block size when long files are read in chunks
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".mp3")

# --- features ---------------------------------------------------------------------------------
WIN_MS = 25.0  # ms, analysis window
HOP_MS = 10.0  # ms, frame shift
N_MELS = 40  # mel bands
N_MFCC = 13  # cepstra kept
DELTA_ORDER = 2  # 0: static only, 1: +delta, 2: +delta-delta
DELTA_WINDOW = 2  # frames each side in the regression formula for deltas
STACK = 3  # consecutive frames concatenated per model frame
SUBSAMPLE = 3  # keep one stacked frame in SUBSAMPLE
CMVN_EPS = 1e-5  # floor on the standard deviation in mean/variance normalisation

# --- recognition ------------------------------------------------------------------------------
PAUSE_LEVEL_DB = -70.0  # dBFS, RMS of a 25 ms frame under which it counts as a pause (digital or near-digital silence)
PAUSE_SPLIT_SECONDS = 0.3  # s, a pause at least this long inside a segment splits it for the LSTM (transcribe, spot)
PAUSE_MIN_SPEECH_SECONDS = 0.15  # s, a piece with fewer non-pause frames than this stays joined to its neighbour

# --- training augmentation -------------------------------------------------------------------
SPEC_MEL_MASK_BANDS = 8  # mel bands, widest SpecAugment frequency mask when masks are drawn over mel bands (of N_MELS)

# --- LSTM kernels -----------------------------------------------------------------------------
WAVEFRONT_MAX_BATCH = 4  # unidirectional inference with batches up to this size pipelines its layers
WAVEFRONT_CHUNK = 12  # timesteps per pipeline stage of that wavefront (measured: 12 beats 16 by 8-18 % at B=1-4, H=128)
CPU_VECTOR_BITS = 512  # bits: vector width LLVM may use in the LSTM kernels (its AVX-512 default is 256; read at compile time, cached kernels keep theirs)
WORKSPACE_MAX_BYTES = 128 * 2**20  # bytes, largest scratch buffer an LSTM keeps between calls
BLAS_ENV = "SPEECHLSTM_BLAS"  # environment variable: BLAS of the CPU kernels, auto | mkl | openblas
MKL_LIB_ENV = "SPEECHLSTM_MKL_LIB"  # environment variable: path of libmkl_rt, when not in the usual places

# --- numerics ---------------------------------------------------------------------------------
LOG_ZERO = -1e30  # stands for log(0) in log-space recursions; finite so no inf - inf NaNs

# --- CUDA -------------------------------------------------------------------------------------
CUDA_THREADS_PER_BLOCK = 128  # threads per block for 1-D kernels (tests patch this small)
CUDA_TILE = 16  # thread-block edge (and K step) of the matrix-multiply kernel (read at import)
CUDA_GEMM_REGISTER_BLOCK = 4  # outputs per thread along each axis: C tiles of 64 x 64 (read at import)
CUDA_SEQS_PER_BLOCK = 4  # sequences one block of the persistent LSTM layer kernel carries (read at import)
CUDA_PERSISTENT_MAX_HIDDEN = 512  # larger hidden sizes use one kernel launch per timestep (read at import)
