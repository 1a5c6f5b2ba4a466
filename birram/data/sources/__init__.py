"""Data sources: each loads one dataset into an ``ArrayDataset`` of tensors."""

from birram.data.sources.bundled import load_digits, load_mnist5k
from birram.data.sources.cifar import load_cifar10, load_cifar100
from birram.data.sources.download import RemoteFile, download_verified
from birram.data.sources.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from birram.data.sources.idx import parse_idx, read_idx
from birram.data.sources.mnist import MNIST_FILES, MNIST_MIRRORS, download_mnist, load_mnist
from birram.data.sources.registry import SOURCES, load_source
from birram.data.sources.split import stratified_split

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "SOURCES",
    "RemoteFile",
    "download_mnist",
    "download_verified",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist5k",
    "load_source",
    "parse_idx",
    "read_idx",
    "stratified_split",
]
