"""How containers run. Knows containers, images and sockets; nothing about SageMaker."""
