"""A torchvision ResNet-18 trained for a few steps on CPU with relulab's monitor and MLflow."""

import lightning as L
import torch
import torchvision
from lightning.pytorch.loggers import MLFlowLogger

from relulab.monitor.callback import DeadUnitMonitor


def resnet() -> torch.nn.Module:
    return torchvision.models.resnet18(num_classes=10)


def images() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, 32, 32, generator=g)
    return torch.utils.data.TensorDataset(x, torch.randint(0, 10, (512,), generator=g))


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = resnet()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


if __name__ == "__main__":
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_steps=12,
        accelerator="cpu",
        default_root_dir="monitored",
        logger=MLFlowLogger(experiment_name="monitored", tracking_uri="sqlite:///mlflow.db"),
        callbacks=[DeadUnitMonitor(every_n_steps=4, network="model", probe_size=128)],
    )
    trainer.fit(Classifier(), torch.utils.data.DataLoader(images(), batch_size=32, shuffle=True))
    print("checkpoint:", trainer.checkpoint_callback.best_model_path)
