"""A textbook worked example reproduced exactly through ``nncli train`` (subject: the whole
training path: config, data, model, backprop, sgd, metrics.csv).

Matt Mazur's "A Step by Step Backpropagation Example" (2015): a 2-2-2 sigmoid network with
given initial weights, quadratic cost E = 1/2 sum_j (y_j - y_hat_j)^2 on one sample,
learning rate 0.5. The published numbers: total error 0.298371109 before the update, and
after one gradient-descent step w1..w4 = 0.149780716, 0.19956143, 0.24975114, 0.29950229
and w5..w8 = 0.35891648, 0.408666186, 0.511301270, 0.561370121. In the lecture's W_ij
convention (W[i, j] connects input j to neuron i), w1, w2 feed h1 and w3, w4 feed h2, so
W1 = [[w1, w2], [w3, w4]] and W2 = [[w5, w6], [w7, w8]].
"""

import numpy as np

from helpers import NO_PLOTS, nn


def test_mazur_one_step_through_nncli_train(tmp_path):
    np.savez(tmp_path / "init.npz", W1=np.array([[0.15, 0.20], [0.25, 0.30]]), b1=np.array([0.35, 0.35]),
             W2=np.array([[0.40, 0.45], [0.50, 0.55]]), b2=np.array([0.60, 0.60]))
    (tmp_path / "one.csv").write_text("i1,i2,o1,o2\n0.05,0.10,0.01,0.99\n")
    (tmp_path / "mazur.yaml").write_text(
        "data: {train: one.csv, target: [o1, o2], standardize: false}\n"
        "model: {layers: [2, 2, 2], activation: sigmoid, output: sigmoid, init: init.npz}\n"
        "loss: mse\n"
        "train: {optimizer: sgd, lr: 0.5, epochs: 1, batch_size: full, dtype: float64}\n"
    )
    r = nn("train", "mazur.yaml", "-q", *NO_PLOTS, cwd=tmp_path)
    assert r.rc == 0, r.show()
    run = tmp_path / r.text.strip()
    z = np.load(run / "model.npz", allow_pickle=False)
    np.testing.assert_allclose(z["W1"], [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=5e-9)
    np.testing.assert_allclose(z["W2"], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=5e-9)
    loss = float((run / "metrics.csv").read_text().splitlines()[1].split(",")[1])
    assert abs(loss - 0.298371109) < 1e-9
