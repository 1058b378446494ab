"""The app ``stateshift dev`` serves in the dev server tests."""

from __future__ import annotations

from runtime_support.file_service import FileService
from runtime_support.sample import service
from stateshift.app import App
from stateshift.runtime.service import Service


class SampleApp(App):
    def runtime_service(self) -> Service:
        sample: FileService = service
        return sample


app = SampleApp("sqlite:///unused.db")
