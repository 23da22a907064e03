"""The CNN of the Adam paper (Kingma & Ba, 2015, section 6.3): c64-c64-c128-1000.

Three 5x5 convolutions (padding 1), each followed by ReLU and a 3x3 stride-2 max-pool,
a global average pool, a 1000-unit ReLU layer with dropout, and a linear classifier.
On 32x32 inputs the feature maps go 32 -> 30 -> 14 -> 12 -> 5 -> 3 -> 1.

Two faults of the classic tutorial are fixed here:
- it applied nn.Dropout2d to the 2-D (batch, features) output of the FC layer, which
  PyTorch then treats as one unbatched (C, H, W) map and so drops whole samples;
  we use element-wise nn.Dropout there;
- it used F.adaptive_avg_pool2d, whose CUDA backward is not deterministic; a mean over
  H and W computes the same thing with a deterministic backward.
"""
import torch
from torch import nn

DROPOUT_PLACEMENTS = ("tutorial", "paper", "none")


class AdamPaperCNN(nn.Module):
    """dropout='tutorial' (default): channel dropout after the conv1 block and dropout on FC.
    dropout='paper': dropout on the input and on FC, as section 6.3 describes.
    dropout='none': no dropout anywhere (for ablations)."""

    def __init__(self, num_classes=10, dropout="tutorial", p=0.5, in_channels=3):
        super().__init__()
        if dropout not in DROPOUT_PLACEMENTS:
            raise ValueError(f"dropout must be one of {DROPOUT_PLACEMENTS}, got {dropout!r}")
        self.dropout_placement = dropout
        self.input_dropout = nn.Dropout(p) if dropout == "paper" else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, 64, 5, padding=1)
        # After a conv, Dropout2d (whole channels) is the tutorial's choice and is valid on 4-D maps.
        self.conv1_dropout = nn.Dropout2d(p) if dropout == "tutorial" else nn.Identity()
        self.conv2 = nn.Conv2d(64, 64, 5, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 5, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.fc1 = nn.Linear(128, 1000)
        self.fc_dropout = nn.Dropout(p) if dropout != "none" else nn.Identity()
        self.fc2 = nn.Linear(1000, num_classes)

    def forward(self, x):
        x = self.input_dropout(x)
        x = self.conv1_dropout(self.pool(torch.relu(self.conv1(x))))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        x = x.mean(dim=(2, 3))  # global average pool, deterministic backward on CUDA
        x = self.fc_dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
