"""The models (lesson 00): loading course-tiny or a named/hub model, the named-model zoo, pretraining.

    loading      load_base_model / load_tokenizer, get_device, set_seed, set_threads, count_parameters
    zoo          named real models converted from a pinned GGUF package (`course get-model`)
    pretrain     course-tiny from scratch (`course pretrain`)
"""

from course_lib.models.loading import (COURSE_TINY, default_model_name, load_base_model, load_tokenizer,
                                       get_device, set_seed, set_threads, ModelNotAvailable, count_parameters,
                                       course_tiny_path)
from course_lib.models.zoo import (GGUFSource, NAMED_MODELS, GetModelConfig, named_model_path, gguf_path,
                                   ensure_model, load_gguf, save_as_folder, convert, chat)
from course_lib.models.pretrain import PretrainConfig, PretrainArgs, train_tokenizer, build_model, pretrain

__all__ = ['COURSE_TINY', 'default_model_name', 'load_base_model', 'load_tokenizer', 'get_device', 'set_seed',
           'set_threads', 'ModelNotAvailable', 'count_parameters', 'course_tiny_path', 'GGUFSource',
           'NAMED_MODELS', 'GetModelConfig', 'named_model_path', 'gguf_path', 'ensure_model', 'load_gguf',
           'save_as_folder', 'convert', 'chat', 'PretrainConfig', 'PretrainArgs', 'train_tokenizer',
           'build_model', 'pretrain']
