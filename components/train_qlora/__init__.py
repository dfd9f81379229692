"""KFP component: train_qlora."""

from components.train_qlora.component import train_qlora

__all__ = ["train_qlora"]
