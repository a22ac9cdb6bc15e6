#!/usr/bin/env python3
"""kiln's `spoken_digits` recipe in PyTorch, with librosa's log-mel spectrograms, on
the same files and the same splits: the reference for its accuracies and time.

    pip install torch librosa soundfile
    python3 examples/python/spoken_digits_torch.py PATH/fsdd-recordings.tar.gz [--epochs N] [--seed N] [--threads N] [--heldout SPEAKER|none]

As the example: every recording fitted to 8,000 samples (1 s at 8 kHz, centred);
librosa's log-mel spectrogram (n_fft 256, hop 128, 40 Slaney mel bands, top_db 80)
recomputed every epoch after a random shift of up to 800 samples and a random gain of
up to 6 dB, then two time masks (up to 10 frames) and two frequency masks (up to 8
bands) set to the spectrogram's mean; standardised with the mean and deviation of the
training set's plain spectrograms; three Conv2d(3x3, same) + BatchNorm(momentum 0.1,
PyTorch's name for Keras's 0.9) + ReLU + MaxPool(2) blocks of 32, 64 and 128 filters,
Flatten, Dropout(0.3), Linear(10); Adam (lr 1e-3, eps 1e-7), 30 epochs of 64. The
official split tests on repetitions 0 to 4; then one speaker (theo) is held out.
The random draws differ from kiln's (NumPy's generator, not kiln's hash).

Prints a `result: {json}` line with test_accuracy, heldout_speaker_accuracy and
train_seconds.
"""

import argparse
import io
import json
import tarfile
import time

import librosa
import numpy as np
import soundfile
import torch
from torch import nn

RATE, LENGTH, N_FFT, HOP, MELS = 8000, 8000, 256, 128, 40


def load(path):
    clips, labels, speakers, reps = [], [], [], []
    with tarfile.open(path) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not m.name.endswith(".wav"):
                continue
            y, sr = soundfile.read(io.BytesIO(tar.extractfile(m).read()), dtype="float32")
            assert sr == RATE, m.name
            digit, speaker, rep = m.name.split("/")[-1][:-4].split("_")
            out = np.zeros(LENGTH, np.float32)
            if len(y) >= LENGTH:
                s = (len(y) - LENGTH) // 2
                out[:] = y[s : s + LENGTH]
            else:
                d = (LENGTH - len(y)) // 2
                out[d : d + len(y)] = y
            clips.append(out)
            labels.append(int(digit))
            speakers.append(speaker)
            reps.append(int(rep))
    return np.stack(clips), np.array(labels), np.array(speakers), np.array(reps)


# librosa.feature.melspectrogram's filterbank, built once (it rebuilds it every call).
MEL_BASIS = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=MELS)


def log_mel(y):
    """librosa.feature.melspectrogram then power_to_db, as [frames, mels]."""
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, pad_mode="constant")) ** 2
    return librosa.power_to_db(MEL_BASIS @ power, ref=1.0, amin=1e-10, top_db=80.0).T


def augmented(y, rng):
    shift = rng.integers(-800, 801)
    gain = 10 ** (rng.uniform(-6, 6) / 20)
    moved = np.zeros_like(y)
    if shift >= 0:
        moved[shift:] = y[: LENGTH - shift]
    else:
        moved[:shift] = y[-shift:]
    spec = log_mel(moved * gain)
    mean = spec.mean()
    for _ in range(2):
        w = rng.integers(0, 11)
        t = rng.integers(0, spec.shape[0] - w + 1)
        spec[t : t + w] = mean
    for _ in range(2):
        w = rng.integers(0, 9)
        f = rng.integers(0, spec.shape[1] - w + 1)
        spec[:, f : f + w] = mean
    return spec


def model():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, momentum=0.1, eps=1e-3),
                nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(128 * 7 * 5, 10))


def run(train, test, epochs, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    (xtr, ytr), (xte, yte) = train, test
    plain = np.stack([log_mel(y) for y in xtr])
    mu, sd = plain.mean(), plain.std()
    test_x = torch.from_numpy((np.stack([log_mel(y) for y in xte]) - mu) / sd)[:, None]
    test_y = torch.from_numpy(yte)
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    started = time.time()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(xtr))
        seen, correct = 0, 0
        for b in range(0, len(order), 64):
            idx = order[b : b + 64]
            x = torch.from_numpy((np.stack([augmented(xtr[i], rng) for i in idx]) - mu) / sd)[:, None]
            y = torch.from_numpy(ytr[idx])
            opt.zero_grad()
            out = net(x.float())
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            correct += (out.argmax(1) == y).sum().item()
            seen += len(idx)
        net.eval()
        with torch.no_grad():
            acc = (net(test_x.float()).argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}/{epochs} - {time.time() - started:.1f}s - "
              f"accuracy: {correct / seen:.4f} - val_accuracy: {acc:.4f}", flush=True)
    return acc, time.time() - started


def main():
    p = argparse.ArgumentParser()
    p.add_argument("archive")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--heldout", default="theo")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    clips, labels, speakers, reps = load(a.archive)
    test = reps < 5
    acc, seconds = run((clips[~test], labels[~test]), (clips[test], labels[test]), a.epochs, a.seed)
    result = {"test_accuracy": round(acc, 4)}
    if a.heldout != "none":
        held = speakers == a.heldout
        acc2, s2 = run((clips[~held], labels[~held]), (clips[held], labels[held]), a.epochs, a.seed)
        result["heldout_speaker_accuracy"] = round(acc2, 4)
        seconds += s2
    result["train_seconds"] = round(seconds, 2)
    result["epochs"] = a.epochs
    print("result: " + json.dumps(result))


if __name__ == "__main__":
    main()
