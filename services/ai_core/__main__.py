from services.ai_core.settings import AiCoreSettings
from services.common.server import run

run("services.ai_core.app:create_app", AiCoreSettings())
