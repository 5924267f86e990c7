"""The video UNet (inflated from an SD-1.x image UNet) and the base model it comes from."""

from tav.models.loading import BaseModel, check_architecture, frozen_on, load_base_model
from tav.models.video_unet import (DEFAULT_TRAINABLE, VideoUNet, inflate_unet, load_trainable, save_trainable,
                                   select_trainable, trainable_state_dict)

__all__ = ["BaseModel", "DEFAULT_TRAINABLE", "VideoUNet", "check_architecture", "frozen_on", "inflate_unet",
           "load_base_model", "load_trainable", "save_trainable", "select_trainable", "trainable_state_dict"]
