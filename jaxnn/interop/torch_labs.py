"""The PyTorch models of the labs, verbatim in structure, as the oracle for parity tests and benchmarks.

Lab 10-1 ``CNN``, lab 10-2 ``DeepCNN``, lab 10-4's ``FolderCNN``, lab 10-5's ``VGG``/``make_layers`` and lab
10-6's ``ResNet`` with ``BasicBlock``/``Bottleneck`` (Deep Learning Zero To All, PyTorch season 2), the longseq lab's
``Net``, lab 11-4's ``TimeSeriesNet`` and lab 11-5's ``Seq2Seq``. Importing this module imports torch.
"""

from __future__ import annotations

import numpy as np
import torch


class CNN(torch.nn.Module):
    """Lab 10-1."""

    def __init__(self):
        super().__init__()
        self.layer1 = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.layer2 = torch.nn.Sequential(
            torch.nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.fc = torch.nn.Linear(7 * 7 * 64, 10, bias=True)
        torch.nn.init.xavier_uniform_(self.fc.weight)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = out.view(out.size(0), -1)
        return self.fc(out)


class DeepCNN(torch.nn.Module):
    """Lab 10-2 (``keep_prob`` 0.5, as in the lab; the parity tests set it to 1 to switch dropout off)."""

    def __init__(self, keep_prob: float = 0.5):
        super().__init__()
        self.keep_prob = keep_prob
        self.layer1 = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.layer2 = torch.nn.Sequential(
            torch.nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.layer3 = torch.nn.Sequential(
            torch.nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(kernel_size=2, stride=2, padding=1),
        )
        self.fc1 = torch.nn.Linear(4 * 4 * 128, 625, bias=True)
        torch.nn.init.xavier_uniform_(self.fc1.weight)
        self.layer4 = torch.nn.Sequential(self.fc1, torch.nn.ReLU(), torch.nn.Dropout(p=1 - self.keep_prob))
        self.fc2 = torch.nn.Linear(625, 10, bias=True)
        torch.nn.init.xavier_uniform_(self.fc2.weight)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = self.layer3(out)
        out = out.view(out.size(0), -1)
        out = self.layer4(out)
        return self.fc2(out)


class Net(torch.nn.Module):
    """Lab 11-4 (longseq): an RNN plus a Linear head (``cell`` picks RNN, LSTM or GRU)."""

    def __init__(self, input_dim: int, hidden_dim: int, layers: int, cell: str = "rnn"):
        super().__init__()
        rnn_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = rnn_cls(input_dim, hidden_dim, num_layers=layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x):
        x, _status = self.rnn(x)
        return self.fc(x)


class TimeSeriesNet(torch.nn.Module):
    """Lab 11-4's ``Net``: an LSTM and a Linear on the last step."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, layers: int):
        super().__init__()
        self.rnn = torch.nn.LSTM(input_dim, hidden_dim, num_layers=layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_dim, output_dim, bias=True)

    def forward(self, x):
        x, _status = self.rnn(x)
        return self.fc(x[:, -1])


class Seq2Seq(torch.nn.Module):
    """Lab 11-5's encoder and decoder (GRUs of ``hidden`` units over embeddings), on a batch of equal-length
    sentences at once; ``forward`` gives the decoder's log-probabilities under teacher forcing."""

    def __init__(self, source_vocab: int, target_vocab: int, hidden: int):
        super().__init__()
        nn = torch.nn
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(source_vocab, hidden)
        self.encoder.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(target_vocab, hidden)
        self.decoder.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.decoder.out = nn.Linear(hidden, target_vocab)

    def forward(self, source, lengths, decoder_inputs):
        _, h = self.encoder.gru(self.encoder.embedding(source))
        out, _ = self.decoder.gru(self.decoder.embedding(decoder_inputs), h)
        return torch.log_softmax(self.decoder.out(out), -1)


class FolderCNN(torch.nn.Module):
    """Lab 10-4 (ImageFolder): on (N, 3, 64, 128) images, two classes."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.layer1 = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(nn.Linear(16 * 13 * 29, 120), nn.ReLU(), nn.Linear(120, 2))

    def forward(self, x):
        out = self.layer2(self.layer1(x))
        return self.layer3(out.view(out.shape[0], -1))


def make_layers(cfg, batch_norm=False, in_channels=3):
    """Lab 10-5's ``make_layers`` (``in_channels`` added: 1 for MNIST)."""
    layers = []
    for v in cfg:
        if v == "M":
            layers += [torch.nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = torch.nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, torch.nn.BatchNorm2d(v), torch.nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, torch.nn.ReLU(inplace=True)]
            in_channels = v
    return torch.nn.Sequential(*layers)


class VGG(torch.nn.Module):
    """Lab 10-5-2's VGG for 32x32 inputs (``features`` from :func:`make_layers`); ``dropout`` as torchvision's."""

    def __init__(
        self,
        features,
        num_classes=1000,
        init_weights=True,
        flat_features=512 * 4 * 4,
        dropout=0.5,
        avgpool=None,
        hidden_features=4096,
    ):
        super().__init__()
        nn = torch.nn
        self.features = features
        # lab 10-5-1 (torchvision's VGG): AdaptiveAvgPool2d((7, 7)) before the classifier
        self.avgpool = nn.AdaptiveAvgPool2d(avgpool) if avgpool is not None else nn.Identity()
        self.classifier = nn.Sequential(  # the labs' hidden_features is 4096
            nn.Linear(flat_features, hidden_features),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, hidden_features),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.classifier(x)


def conv3x3(in_planes, out_planes, stride=1):
    return torch.nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return torch.nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(torch.nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.relu = torch.nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(torch.nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = torch.nn.BatchNorm2d(planes * self.expansion)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(torch.nn.Module):
    """Lab 10-6-2's CIFAR ResNet (3x3 stem of 16 channels, no max pool; ``in_channels`` added: 1 for MNIST).

    ``stem='imagenet'`` (added) is lab 10-6-1's, torchvision's ``resnet.ResNet``: a 7x7 stride-2 convolution to 64
    channels, a 3x3 stride-2 max pool, and stages of 64, 128, 256 and 512 planes with strides 1, 2, 2, 2.
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, in_channels=3, stem="cifar"):
        super().__init__()
        nn = torch.nn
        imagenet = stem == "imagenet"
        self.inplanes = 64 if imagenet else 16
        if imagenet:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if imagenet else nn.Identity()
        planes, strides = ((64, 128, 256, 512), (1, 2, 2, 2)) if imagenet else ((16, 32, 64, 128), (1, 1, 2, 2))
        self.layer1 = self._make_layer(block, planes[0], layers[0], stride=strides[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=strides[1])
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=strides[2])
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=strides[3])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = torch.nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                torch.nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return torch.nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


def resnet18(num_classes: int = 1000, seed: int | None = None) -> ResNet:
    """torchvision's ``resnet18`` layout and names (lab 10-6-1's model), initialised from ``seed`` if given."""
    if seed is not None:
        torch.manual_seed(seed)
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, stem="imagenet")


def train_mnist_lab(
    model_cls, images, labels, *, seed=777, epochs=15, batch_size=100, learning_rate=1e-3, dtype=torch.float32, log=None
) -> list[float]:
    """Labs 10-1 and 10-2's training script: ``torch.manual_seed(seed)``, a ``DataLoader(shuffle=True,
    drop_last=True)`` over the ``ToTensor()`` images (``images``: uint8 (N, 28, 28, 1)), the model, Adam, and each
    epoch's ``avg_cost`` (the sum of ``cost / total_batch``), passed to ``log(epoch, cost)`` and returned."""
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(images).reshape(len(images), 1, 28, 28)).to(dtype).div(255)
    dataset = torch.utils.data.TensorDataset(x, torch.from_numpy(np.asarray(labels, np.int64)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    model = model_cls().to(dtype)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    costs = []
    for epoch in range(epochs):
        avg_cost = 0
        for X, Y in loader:
            optimizer.zero_grad()
            cost = criterion(model(X), Y)
            cost.backward()
            optimizer.step()
            avg_cost += cost.detach() / len(loader)
        costs.append(float(avg_cost))
        if log is not None:
            log(epoch + 1, costs[-1])
    return costs


def load_arrays(module: torch.nn.Module, state_dict) -> torch.nn.Module:
    """Load a state_dict of NumPy arrays (or tensors) into ``module`` (strict), and return it."""
    module.load_state_dict({k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in state_dict.items()})
    return module
