"""Model families, one module each, built by name through one factory.

Every constructor takes `num_classes`, `image_size` and `in_channels` (the dataset decides them) plus
its own architecture arguments, whose defaults reproduce the report's network at CIFAR-100 shape.
"""
from __future__ import annotations

import importlib

import torch.nn as nn

# name -> "module:Class". Imported lazily so that `cifar_nb list` does not import every family.
MODELS = {
    "resnet_bottleneck": "cifar_nb.models.resnet_bottleneck:ResNetBottleneck",   # report A classifier
    "dsconv_resnet": "cifar_nb.models.dsconv_resnet:DSConvResNet",               # report B classifier
    "densenet": "cifar_nb.models.densenet:DenseNet",                             # report C classifier
    "mbconv_se": "cifar_nb.models.mbconv_se:MBConvSENet",                        # report E classifier
    "search_cnn": "cifar_nb.models.search_cnn:SearchCNN",                        # report D families
    "dcgan": "cifar_nb.models.dcgan:DCGAN",                                      # reports A, C, E GANs
    "unet_ddpm": "cifar_nb.models.unet_ddpm:ConditionalUNet",                    # report B DDPM
    "ours_classifier": "cifar_nb.models.ours_classifier:OursClassifier",         # our own classifier (issue 16)
    "ours_gan": "cifar_nb.models.ours_gan:OursGAN",                              # our own GAN
}


def model_class(name: str):
    try:
        target = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def create_model(name: str, **kwargs) -> nn.Module:
    return model_class(name)(**kwargs)


def build_for_config(cfg, num_classes: int = 100, image_size: int = 32, in_channels: int = 3) -> nn.Module:
    """The network a RunConfig trains, shaped for its dataset (model_args may override the shape)."""
    args = dict(num_classes=num_classes, image_size=image_size, in_channels=in_channels)
    args.update(cfg.model_args)
    return create_model(cfg.model, **args)
