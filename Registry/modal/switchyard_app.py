"""The Modal app Switchyard's `modal` engine speaks to.

Data shipped with Switchyard, deployed into *your* Modal workspace; Switchyard
never runs it locally. Deploy (or let `yard` deploy it for you):

    SWITCHYARD_MODEL=black-forest-labs/FLUX.1-schnell SWITCHYARD_GPU=L40S \
        modal deploy Registry/modal/switchyard_app.py

Prerequisites: `pip install modal`, `modal token new`, a Modal secret named
`huggingface-secret` holding HF_TOKEN (gated models), and a proxy auth token
(Settings → Proxy Auth Tokens) for the engine's MODAL_KEY / MODAL_SECRET.

Contract (one web app, behind proxy auth):
    POST /spawn                 {"capability", "inputs", "model"?, "idempotency_key"?}
                                -> 200 {"call_id": "fc-…", "status": "PENDING"}
                                   (the same call again for a known idempotency key)
    GET  /result/{call_id}      -> 202 {"status": "PENDING"} while pending
                                -> 200 {"status": "SUCCESS", "outputs": {…}, "usage": {"execution_ms", "gpu"}}
                                -> 200 {"status": FAILURE|INIT_FAILURE|TERMINATED|TIMEOUT, "error", "usage"?}
                                   (usage: the GPU time the call ran, as measured inside the
                                   function; Modal bills container time, so this is what a
                                   failed call costs too. A TIMEOUT ran for the whole timeout.)
                                -> 410 {"status": "EXPIRED"} after 7 days (Modal keeps results a week)
                                -> 404 {"status": "NOT_FOUND"} for an unknown call
    POST /cancel/{call_id}      -> 200 {"status": <status before>, "cancelled": bool}
    GET  /calls/{idempotency_key} -> 200 {"call_id", "status"} | 404
    GET  /health                -> 200 {"app", "model", "gpu"}
Outputs are the capability's catalog outputs (Registry/capabilities), files
as data: URIs (image/png, video/mp4); Switchyard stores them at once:
    image.generate  {"images": [{"file", "width", "height", "seed"}], "seed", "model"}
    video.from_text {"video", "duration_seconds", "width", "height", "fps", "seed"}
"""

import base64
import io
import os
import time

import modal

MODEL = os.environ.get("SWITCHYARD_MODEL", "black-forest-labs/FLUX.1-schnell")
GPU = os.environ.get("SWITCHYARD_GPU", "L40S")
APP_NAME = os.environ.get("SWITCHYARD_APP", "switchyard")
TIMEOUT_S = int(os.environ.get("SWITCHYARD_TIMEOUT", "1800"))
CACHE_DIR = "/cache"
# The catalog's aspect ratios at about a megapixel, sides multiples of 64.
ASPECT_SIZES = {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 896),
                "3:4": (896, 1152), "21:9": (1536, 640)}

gpu_image = (
    modal.Image.debian_slim(python_version="3.12")
    .pip_install(
        "torch==2.5.1",
        "diffusers==0.32.2",
        "transformers==4.48.1",
        "accelerate==1.3.0",
        "sentencepiece==0.2.0",
        "imageio[ffmpeg]==2.36.1",
        "huggingface_hub[hf_transfer]==0.27.1",
    )
    # Weights live on the Volume: downloaded once, shared by every container.
    .env({"HF_HUB_ENABLE_HF_TRANSFER": "1", "HF_HOME": f"{CACHE_DIR}/huggingface"})
)
web_image = modal.Image.debian_slim(python_version="3.12").pip_install("fastapi[standard]==0.115.6")

weights = modal.Volume.from_name("huggingface-cache", create_if_missing=True)
# idempotency key -> function call id, so a spawn whose answer was lost is found again.
calls = modal.Dict.from_name(f"{APP_NAME}-calls", create_if_missing=True)

app = modal.App(APP_NAME)


@app.cls(
    image=gpu_image,
    gpu=GPU,
    volumes={CACHE_DIR: weights},
    secrets=[modal.Secret.from_name("huggingface-secret")],
    timeout=TIMEOUT_S,
    scaledown_window=300,
)
class Generator:
    @modal.enter()
    def load(self):
        import torch
        from diffusers import DiffusionPipeline

        # A failure here (bad token, unknown model, no memory) is INIT_FAILURE.
        self.pipe = DiffusionPipeline.from_pretrained(
            MODEL, torch_dtype=torch.bfloat16, token=os.environ.get("HF_TOKEN")
        ).to("cuda")
        weights.commit()

    @modal.method()
    def generate(self, capability: str, inputs: dict) -> dict:
        # Timed here, so a failed call reports what it cost as well as a good one.
        started = time.monotonic()
        try:
            outputs = self._generate(capability, inputs)
        except Exception as error:  # the model raised: report it with the time it used
            return {"error": f"{type(error).__name__}: {error}",
                    "execution_ms": int((time.monotonic() - started) * 1000)}
        return {"outputs": outputs, "execution_ms": int((time.monotonic() - started) * 1000)}

    def _generate(self, capability: str, inputs: dict) -> dict:
        import torch

        seed = int(inputs.get("seed", torch.seed() % 2**32))
        generator = torch.Generator("cuda").manual_seed(seed)
        kwargs = {"prompt": inputs["prompt"], "generator": generator}
        if inputs.get("negative_prompt"):
            kwargs["negative_prompt"] = inputs["negative_prompt"]
        for name, key in (("steps", "num_inference_steps"), ("guidance_scale", "guidance_scale"),
                          ("width", "width"), ("height", "height")):
            if name in inputs:
                kwargs[key] = inputs[name]
        if "aspect_ratio" in inputs and "width" not in inputs:
            kwargs["width"], kwargs["height"] = ASPECT_SIZES[inputs["aspect_ratio"]]
        result = self.pipe(**kwargs)
        if capability == "video.from_text":
            from diffusers.utils import export_to_video

            path = "/tmp/out.mp4"
            fps = int(inputs.get("fps", 16))
            export_to_video(result.frames[0], path, fps=fps)
            with open(path, "rb") as f:
                data = f.read()
            first = result.frames[0][0]  # a PIL image or an HxWxC array, by pipeline
            width, height = (first.width, first.height) if hasattr(first, "width") else (first.shape[1], first.shape[0])
            return {"video": "data:video/mp4;base64," + base64.b64encode(data).decode(),
                    "duration_seconds": len(result.frames[0]) / fps, "width": int(width), "height": int(height),
                    "fps": fps, "seed": seed}
        image = result.images[0]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return {"images": [{"file": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                            "width": image.width, "height": image.height, "seed": seed}],
                "seed": seed, "model": MODEL}


SUPPORTED = {"image.generate", "video.from_text"}


async def call_status(call) -> str:
    """Modal's InputStatus for the call: PENDING, SUCCESS, FAILURE, INIT_FAILURE, TERMINATED, TIMEOUT."""
    try:
        graph = await call.get_call_graph.aio()
        return graph[0].status.name if graph else "PENDING"
    except Exception:
        return "FAILURE"


@app.function(image=web_image)
@modal.asgi_app(requires_proxy_auth=True)
def web():
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    api = FastAPI(title="switchyard")

    @api.post("/spawn")
    async def spawn(request: Request):
        body = await request.json()
        capability, inputs = body.get("capability"), body.get("inputs")
        if capability not in SUPPORTED or not isinstance(inputs, dict):
            return JSONResponse({"detail": f"unsupported capability {capability!r} or inputs not an object"}, status_code=400)
        if body.get("model") and body["model"] != MODEL:
            return JSONResponse({"detail": f"this app serves {MODEL}, not {body['model']}; redeploy with SWITCHYARD_MODEL"},
                                status_code=400)
        key = body.get("idempotency_key")
        if key:
            existing = await calls.get.aio(key)
            if existing:
                return {"call_id": existing, "status": await call_status(modal.FunctionCall.from_id(existing))}
        call = await Generator().generate.spawn.aio(capability, inputs)
        if key:
            await calls.put.aio(key, call.object_id)
        return {"call_id": call.object_id, "status": "PENDING"}

    @api.get("/result/{call_id}")
    async def result(call_id: str):
        try:
            call = modal.FunctionCall.from_id(call_id)
            answer = await call.get.aio(timeout=0)
        except TimeoutError:
            return JSONResponse({"status": "PENDING"}, status_code=202)
        except modal.exception.OutputExpiredError:
            return JSONResponse({"status": "EXPIRED", "error": "function call results are kept for 7 days"}, status_code=410)
        except modal.exception.NotFoundError as error:
            return JSONResponse({"status": "NOT_FOUND", "error": str(error)}, status_code=404)
        except modal.exception.FunctionTimeoutError as error:
            return {"status": "TIMEOUT", "error": str(error), "usage": {"execution_ms": TIMEOUT_S * 1000, "gpu": GPU}}
        except Exception as error:  # the model raised, the container failed to start, or it was terminated
            status = await call_status(call)
            return {"status": status if status not in ("PENDING", "SUCCESS") else "FAILURE",
                    "error": f"{type(error).__name__}: {error}"}
        usage = {"execution_ms": answer.get("execution_ms"), "gpu": GPU}
        if "error" in answer:
            return {"status": "FAILURE", "error": answer["error"], "usage": usage}
        return {"status": "SUCCESS", "outputs": answer["outputs"], "usage": usage}

    @api.post("/cancel/{call_id}")
    async def cancel(call_id: str):
        try:
            call = modal.FunctionCall.from_id(call_id)
            before = await call_status(call)
            if before == "PENDING":
                await call.cancel.aio()
        except modal.exception.NotFoundError as error:
            return JSONResponse({"status": "NOT_FOUND", "error": str(error)}, status_code=404)
        return {"status": before, "cancelled": before == "PENDING"}

    @api.get("/calls/{key}")
    async def by_key(key: str):
        existing = await calls.get.aio(key)
        if not existing:
            return JSONResponse({"detail": "no call for this idempotency key"}, status_code=404)
        return {"call_id": existing, "status": await call_status(modal.FunctionCall.from_id(existing))}

    @api.get("/health")
    async def health():
        return {"app": APP_NAME, "model": MODEL, "gpu": GPU}

    return api
