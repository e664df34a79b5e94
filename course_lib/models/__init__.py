"""The models (lesson 00): loading course-tiny or a named/hub model, the named-model zoo, pretraining.

    base         model_name (the one resolver), COURSE_TINY, get_device, set_seed, set_threads, count_parameters
    loading      load_base_model / load_tokenizer (course-tiny, a named model, a folder or a hub id; offline first)
    zoo          named real models converted from a pinned GGUF package (`course get-model`)
    pretraining  course-tiny from scratch (`course pretrain`)
"""

from course_lib.models.base import (COURSE_TINY, ModelNotAvailable, model_name, default_model_name,
                                    course_tiny_path, get_device, set_seed, set_threads, count_parameters)
from course_lib.models.zoo import (GGUFSource, NAMED_MODELS, GetModelConfig, named_model_source,
                                   named_model_path, is_converted, gguf_path, ensure_model, load_gguf,
                                   save_as_folder, convert, chat)
from course_lib.models.loading import resolve_model, load_base_model, load_tokenizer
from course_lib.models.pretraining import PretrainConfig, train_tokenizer, build_model, pretrain

__all__ = ['COURSE_TINY', 'ModelNotAvailable', 'model_name', 'default_model_name', 'course_tiny_path',
           'get_device', 'set_seed', 'set_threads', 'count_parameters', 'GGUFSource', 'NAMED_MODELS',
           'GetModelConfig', 'named_model_source', 'named_model_path', 'is_converted', 'gguf_path',
           'ensure_model', 'load_gguf', 'save_as_folder', 'convert', 'chat', 'resolve_model',
           'load_base_model', 'load_tokenizer', 'PretrainConfig', 'train_tokenizer', 'build_model',
           'pretrain']
