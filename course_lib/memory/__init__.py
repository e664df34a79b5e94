"""Memory (lessons 04 and 08): what a training step holds, estimated, measured and sharded.

    vram         the estimator: ModelShape, VramConfig, estimate_memory (`course vram`)
    quant        NF4 from scratch (= bitsandbytes)
    memtrack     torch's MemTracker and peak RSS around a real step
    zero         ZeRO model states per GPU (= DeepSpeed's estimators)
"""

from course_lib.memory.vram import (ModelShape, PRESETS, VramConfig, MemoryEstimate, estimate_memory,
                                    model_shape, shape_of, METHODS, PRECISIONS, OPTIMIZERS, PARTS,
                                    Activations, activation_bytes)
from course_lib.memory.quant import (nf4_table, int4_table, fp4_table, dynamic_map_8bit, quantize_blockwise,
                                     dequantize_blockwise, quantize_nf4, dequantize_nf4, DoubleQuantized,
                                     double_quantize, double_dequantize, bits_per_parameter,
                                     keep_cpu_4bit_trainable)
from course_lib.memory.memtrack import (TrackedMemory, track_training_step, track_model_steps, PeakMemory,
                                        measure_peak_memory, RssSampler, release_freed_memory)
from course_lib.memory.zero import (ZERO_STAGES, ModelStates, largest_layer_parameters, model_states_per_gpu,
                                    deepspeed_estimate, zero_paper_bytes_per_gpu, cards_needed)

__all__ = ['ModelShape', 'PRESETS', 'VramConfig', 'MemoryEstimate', 'estimate_memory', 'model_shape',
           'shape_of', 'METHODS', 'PRECISIONS', 'OPTIMIZERS', 'PARTS', 'Activations', 'activation_bytes',
           'nf4_table', 'int4_table', 'fp4_table', 'dynamic_map_8bit', 'quantize_blockwise',
           'dequantize_blockwise', 'quantize_nf4', 'dequantize_nf4', 'DoubleQuantized', 'double_quantize',
           'double_dequantize', 'bits_per_parameter', 'keep_cpu_4bit_trainable', 'TrackedMemory',
           'track_training_step', 'track_model_steps', 'PeakMemory', 'measure_peak_memory', 'RssSampler',
           'release_freed_memory', 'ZERO_STAGES', 'ModelStates', 'largest_layer_parameters',
           'model_states_per_gpu', 'deepspeed_estimate', 'zero_paper_bytes_per_gpu', 'cards_needed']
