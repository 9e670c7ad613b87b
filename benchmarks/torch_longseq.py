"""Lab 11-4 (longseq) in PyTorch, as the lab writes it (sorted vocabulary): the end-to-end baseline for
benchmarks/run.py. Prints the reconstructed sentence of every iteration."""

import numpy as np
import torch

sentence = (
    "if you want to build a ship, don't drum up people together to "
    "collect wood and don't assign them tasks and work, but rather "
    "teach them to long for the endless immensity of the sea."
)
char_set = sorted(set(sentence))
char_dic = {c: i for i, c in enumerate(char_set)}
dic_size = hidden_size = len(char_dic)
sequence_length, learning_rate = 10, 0.1
x_data, y_data = [], []
for i in range(0, len(sentence) - sequence_length):
    x_data.append([char_dic[c] for c in sentence[i : i + sequence_length]])
    y_data.append([char_dic[c] for c in sentence[i + 1 : i + sequence_length + 1]])
X = torch.FloatTensor(np.array([np.eye(dic_size)[x] for x in x_data]))
Y = torch.LongTensor(y_data)


class Net(torch.nn.Module):
    def __init__(self, input_dim, hidden_dim, layers):
        super().__init__()
        self.rnn = torch.nn.RNN(input_dim, hidden_dim, num_layers=layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x):
        x, _status = self.rnn(x)
        return self.fc(x)


torch.manual_seed(0)
net = Net(dic_size, hidden_size, 2)
criterion = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(net.parameters(), learning_rate)
for i in range(100):
    optimizer.zero_grad()
    outputs = net(X)
    loss = criterion(outputs.view(-1, dic_size), Y.view(-1))
    loss.backward()
    optimizer.step()
    results = outputs.argmax(dim=2)
    predict_str = ""
    for j, result in enumerate(results):
        if j == 0:
            predict_str += "".join([char_set[t] for t in result])
        else:
            predict_str += char_set[result[-1]]
    print(i, f"{loss.item():.6f}", predict_str)
