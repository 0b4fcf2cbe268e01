"""cifar_nb."""
