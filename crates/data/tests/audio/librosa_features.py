"""Expected features for crates/data/tests/audio.rs, computed by librosa.

Run from this folder with a Python that has librosa (0.11.0 produced expected.txt):

    python librosa_features.py > expected.txt

Each line of the output is `name frames bands value...`, the values time-major
(librosa's arrays transposed), so that the test reads them without a JSON parser.
"""

import librosa
import numpy as np
import soundfile

FILES = ["0_jackson_0.wav", "7_theo_3.wav"]


def emit(name, array):
    rows = array.T  # librosa is [bands, frames]; kiln is [frames, bands]
    values = " ".join(f"{v:.7g}" for v in rows.ravel())
    print(f"{name} {rows.shape[0]} {rows.shape[1]} {values}")


for f in FILES:
    # soundfile scales 16-bit PCM by 1/32768, as kiln's reader does.
    y, sr = soundfile.read(f, dtype="float32")
    assert sr == 8000
    emit(f"{f}:samples", y[None, :].T)
    # The power spectrum: n_fft 256, hop 128, Hann, centred with zero padding.
    power = np.abs(librosa.stft(y, n_fft=256, hop_length=128, window="hann", center=True,
                                pad_mode="constant")) ** 2
    emit(f"{f}:power", power)
    # Log-mel, librosa's defaults: Slaney scale and normalisation, top_db 80.
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=256, hop_length=128, n_mels=40,
                                         pad_mode="constant")
    emit(f"{f}:logmel_slaney", librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0))
    # Log-mel, HTK scale without normalisation, 20..3800 Hz, Hamming window, 512 / 160,
    # frames not centred, no top_db floor.
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160, n_mels=64,
                                         window="hamming", center=False, htk=True, norm=None,
                                         fmin=20.0, fmax=3800.0)
    emit(f"{f}:logmel_htk", librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None))
    # 13 MFCCs of the Slaney log-mel above (DCT-II, orthonormal).
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=256, hop_length=128, n_mels=40,
                                pad_mode="constant")
    emit(f"{f}:mfcc", mfcc)
