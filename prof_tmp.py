import torch, tempfile, time
torch.set_num_threads(2)
from benchmarks.bench_inference import _batch, _mano_root
from models.blocks.mano_head import right_hand_mano_layer
from models.unihope import UniHOPENet
torch.manual_seed(0)
with tempfile.TemporaryDirectory() as s:
    mano = right_hand_mano_layer(_mano_root(None, s))
model = UniHOPENet(mano, input_size=128, obj_conf_layer_legacy=True).eval()
b=_batch(8)
with torch.inference_mode():
    model(b)
    t=time.perf_counter(); model(b); print('fwd', time.perf_counter()-t)
    from torch.profiler import profile
    with profile() as p:
        model(b)
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
